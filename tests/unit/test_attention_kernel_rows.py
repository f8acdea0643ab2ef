"""Issue 29: the H100's sdpa / flash-attn-4 / flex_attention rows, merged into the shipped table and ranked.

Hardware is data: the H100 snapshot with flash-attn-4 4.0.0b36 (tests/fixtures/envs/h100_fa4_tf517.json, the
versions of the 2026-12-06 run) and the one without it (h100_fa2_fa3_bnb.json has flash-attn-4 absent).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge.measured_runs import one_scale
from advisor.knowledge.measurements import (
    Measurement,
    MeasurementKey,
    MeasurementStore,
    kernels_match,
    shipped_measurements,
    versions_of,
)
from advisor.model.resolve import resolve_model
from advisor.model.spec import shape_signature
from advisor.probe.target import load_environment

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"
FA4_ENV = ENVS / "h100_fa4_tf517.json"
FOLDER = ROOT / "docs" / "gpu" / "attention-kernels"
LLAMA3 = "meta-llama/Meta-Llama-3-8B"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _key(versions: Any, candidate: str, kernels: str) -> MeasurementKey:
    return MeasurementKey(**{**versions.model_dump(), "attention_kernels": kernels}, model_type="llama",
                          shape="s", workload="prefill", candidate=candidate)


def test_kernel_matching_rule_counts_only_the_candidates_own_package() -> None:
    with_fa4 = versions_of(load_environment(FA4_ENV))
    assert "flash-attn-4=4.0.0b36" in with_fa4.attention_kernels
    old = "flash-attn=none;flash-attn-3=none;kernels=none"  # rows written before flash-attn-4 was recorded
    new = "flash-attn=none;flash-attn-3=none;flash-attn-4=4.0.0b36;kernels=none"
    # sdpa rows measured without flash-attn-4 still hold once it is installed, and the other way round
    assert kernels_match(_key(with_fa4, "sdpa / bfloat16 / 1 GPU", old), with_fa4)
    without = with_fa4.model_copy(update={"attention_kernels": old})
    assert kernels_match(_key(with_fa4, "flex_attention / bfloat16 / 1 GPU", new), without)
    # an FA4 row needs the same flash-attn-4: not absent, not unrecorded, not another version
    assert kernels_match(_key(with_fa4, "flash_attention_4 / bfloat16 / 1 GPU", new), with_fa4)
    assert not kernels_match(_key(with_fa4, "flash_attention_4 / bfloat16 / 1 GPU", new), without)
    assert not kernels_match(_key(with_fa4, "flash_attention_4 / bfloat16 / 1 GPU", old), with_fa4)
    other = with_fa4.model_copy(update={"attention_kernels": new.replace("4.0.0b36", "4.0.1")})
    assert not kernels_match(_key(with_fa4, "flash_attention_4 / bfloat16 / 1 GPU", new), other)
    assert not kernels_match(_key(with_fa4, "flash_attention_2 / bfloat16 / 1 GPU", new), with_fa4)


def test_the_local_store_applies_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    with_fa4 = versions_of(load_environment(FA4_ENV))
    model = resolve_model(LLAMA3)
    old = "flash-attn=none;flash-attn-3=none;kernels=none"
    rows = [Measurement(key=MeasurementKey(**{**with_fa4.model_dump(), "attention_kernels": kernels},
                                           model_type=model.model_type, shape=shape_signature(model),
                                           workload="prefill", candidate=f"{attn} / bfloat16 / 1 GPU"),
                        metric="prefill_tokens_per_second", value=value, measured_at="2026-12-06", run="t")
            for attn, kernels, value in (("sdpa", old, 10.0), ("flash_attention_4", with_fa4.attention_kernels, 9.0),
                                         ("flash_attention_4", old, 99.0))]
    assert MeasurementStore().record(rows) == 3
    found = MeasurementStore().lookup(with_fa4, model.model_type, shape_signature(model), "prefill")
    assert sorted((r.key.candidate, r.value) for r in found.matches) == [
        ("flash_attention_4 / bfloat16 / 1 GPU", 9.0), ("sdpa / bfloat16 / 1 GPU", 10.0)]
    assert [r.value for r in found.ignored] == [99.0]


def test_shipped_table_holds_the_merged_runs_and_is_up_to_date() -> None:
    rows = [m for m in shipped_measurements() if m.run.startswith("attention_kernels-")]
    types = {m.key.model_type for m in rows}
    assert {"llama", "mistral", "mixtral", "qwen2", "gemma", "falcon", "opt"} <= types
    attns = {m.key.candidate.split(" / ")[0] for m in rows}
    assert attns == {"sdpa", "flash_attention_4", "flex_attention", "eager"}
    # BLOOM's sdpa request stays on eager: its timing is eager's row, and BLOOM has no sdpa row from these runs
    bloom = {m.key.candidate.split(" / ")[0] for m in rows if m.key.model_type == "bloom"}
    assert bloom == {"eager"}
    assert {m.key.candidate.split(" / ")[1] for m in rows if "flash_attention_4" in m.key.candidate} == {
        "bfloat16", "float16"}
    assert all(m.layers == 4 and m.first_call_seconds is not None for m in rows)
    # Falcon's FA4 request stayed on sdpa: no FA4 row for it
    assert not [m for m in rows if m.key.model_type == "falcon" and "flash_attention_4" in m.key.candidate]
    # flex's first call is the cold compile of the compile phase (about 20 s), not the warm-cache hit (~5 s)
    flex = [m for m in rows if m.key.model_type == "llama" and m.key.candidate.startswith("flex_attention")]
    assert flex and all(m.first_call_seconds and m.first_call_seconds > 15 for m in flex)
    llama = resolve_model(LLAMA3)
    assert {m.key.shape for m in rows if m.key.model_type == "llama"} == {shape_signature(llama)}  # full config
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "merge_attention_kernels.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_merge_is_idempotent_and_keeps_an_h200_apart(tmp_path: Path) -> None:
    from merge_attention_kernels import merge

    data = tmp_path / "data"
    data.mkdir()
    shipped = ROOT / "data" / "measurements" / "h100.json"
    (data / "h100.json").write_text(shipped.read_text())
    folder = tmp_path / "runs"
    folder.mkdir()
    measure = json.loads((FOLDER / "attention-kernels-measure-bf16.json").read_text())
    h200 = copy.deepcopy(measure)
    h200["environment"]["gpu"] = "NVIDIA H200"
    h200["children"] = h200["children"][:1]
    (folder / "attention-kernels-measure-h200.json").write_text(json.dumps(h200))
    (folder / "attention-kernels-measure-bf16.json").write_text(json.dumps(measure))
    (folder / "notes.json").write_text("[]")  # not a run: ignored
    first = merge([FOLDER, folder], data)
    assert set(first) == {data / "h100.json", data / "h200.json"}
    for dest, content in first.items():
        dest.write_text(json.dumps(content, indent=1) + "\n")
    assert merge([FOLDER, folder], data) == first  # again: nothing changes
    h100_rows = first[data / "h100.json"]["rows"]
    assert len(h100_rows) == len(json.loads(shipped.read_text())["rows"])  # the same file twice: the same rows
    assert {r["key"]["gpu"] for r in first[data / "h200.json"]["rows"]} == {"NVIDIA H200"}
    assert all(r["key"]["gpu"] != "NVIDIA H200" for r in h100_rows)


def test_merge_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "merge_attention_kernels.py"),
                           str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=ROOT, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_one_scale_brings_a_second_run_through_a_shared_candidate() -> None:
    versions = versions_of(load_environment(FA4_ENV))

    def row(attn: str, value: float, run: str) -> Measurement:
        return Measurement(key=_key(versions, f"{attn} / bfloat16 / 1 GPU", "k"), metric="m", value=value,
                           measured_at="2026-12-06", run=run, spread=0.01)

    scaled = one_scale([row("sdpa", 100.0, "new"), row("flash_attention_4", 90.0, "new"), row("flex", 80.0, "new"),
                        row("sdpa", 10.0, "old"), row("eager", 5.0, "old")])
    assert {k.split(" /")[0]: v.value for k, v in scaled.rows.items()} == {
        "sdpa": 100.0, "flash_attention_4": 90.0, "flex": 80.0, "eager": 50.0}
    assert scaled.rows["eager / bfloat16 / 1 GPU"].run == "old"
    assert scaled.comparable("eager / bfloat16 / 1 GPU", "sdpa / bfloat16 / 1 GPU")


def _ranking(cli: Any, *args: str) -> dict[str, Any]:
    code, out, _ = cli("recommend", LLAMA3, "--env", str(FA4_ENV), "--format", "json", *args)
    assert code == 0
    plan: dict[str, Any] = json.loads(out)
    return plan


def test_recommend_uses_the_fa4_rows_and_states_the_first_call(cli: Any) -> None:
    static = _ranking(cli, "--no-measurements")
    assert static["chosen"]["label"] == "flash_attention_4 / bfloat16 / 1 GPU"  # the static order, unmeasured
    plan = _ranking(cli)
    assert plan["chosen"]["label"] == "sdpa / bfloat16 / 1 GPU"
    notes = plan["ranking"]["notes"]
    assert "sdpa 1.06x faster than flash_attention_4 (prefill); sdpa chosen" in notes[0]
    first = next(n for n in notes if n.startswith("first call at a new shape"))
    assert "flash_attention_4 2.9 s for this model" in first and "flex_attention 20.2 s for this model" in first
    assert "not counted: --workload server" in first
    rel = {t["label"].split(" /")[0]: t["relative_throughput"] for t in plan["ranking"]["tradeoffs"][:4]}
    assert rel["flash_attention_4"] == pytest.approx(167869.06 / 178685.23, rel=1e-4)  # the same run's ratio
    # eager comes from the 2026-11-25 run, brought onto the same scale through that run's sdpa
    llama = resolve_model(LLAMA3)
    older = {m.key.candidate.split(" /")[0]: m.value for m in shipped_measurements()
             if m.run.startswith("h100_measure-") and m.key.shape == shape_signature(llama)
             and m.key.workload == "prefill"}
    assert rel["eager"] == pytest.approx(older["eager"] / older["sdpa"], rel=1e-6)


def test_workload_one_shot_counts_the_first_call(cli: Any) -> None:
    plan = _ranking(cli, "--workload", "one-shot", "--batch", "16")
    assert plan["ranking"]["serving"] == "one-shot"
    assert plan["chosen"]["label"] == "sdpa / bfloat16 / 1 GPU"
    assert "(first call); sdpa chosen" in plan["ranking"]["notes"][0]
    assert any("counted: --workload one-shot" in n for n in plan["ranking"]["notes"])
    code, out, _ = cli("doctor", LLAMA3, "--env", str(FA4_ENV), "--workload", "one-shot")
    assert "--workload one-shot" in out and "flex_attention 24.1 s for this model" not in out  # prefill at batch 1
    assert "flex_attention 20.2 s for this model" in out
    code, out, err = cli("recommend", LLAMA3, "--env", str(FA4_ENV), "--workload", "forever")
    assert code == 2 and "Traceback" not in err


def test_without_flash_attn_4_its_rows_say_nothing(cli: Any) -> None:
    code, out, _ = cli("recommend", LLAMA3, "--env", str(ENVS / "h100_fa2_fa3_bnb.json"), "--format", "json")
    plan = json.loads(out)
    labels = [t["label"] for t in plan["ranking"]["tradeoffs"]]
    assert not any(label.startswith("flash_attention_4") for label in labels)
    assert not any("flash_attention_4" in n for n in plan["ranking"]["notes"])


def test_one_shot_without_first_call_rows_keeps_the_static_order(cli: Any) -> None:
    """The 2026-11-25 rows (sdpa, eager) have no first call: one-shot cannot rank by it and says so."""
    probe = ROOT / "docs" / "examples" / "h100-probe.json"
    code, out, _ = cli("recommend", "meta-llama/Llama-2-7b-hf", "--env", str(probe), "--workload", "one-shot",
                       "--format", "json")
    plan = json.loads(out)
    assert plan["chosen"]["label"] == "sdpa / bfloat16 / 1 GPU"
    assert "but not the first call of sdpa / bfloat16 / 1 GPU: static order kept" in plan["ranking"]["notes"][0]
    assert any(re.search(r"flex_attention \d+\.\d-\d+\.\d s over \d+ measured shape\(s\) \(this model unmeasured\)", n)
               for n in plan["ranking"]["notes"])
