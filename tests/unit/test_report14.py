"""Issue 14, "the report": one test (or more) per item, on --env fixtures and real shipped configs."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

import pytest

from advisor.numbers import diff, millis, params, plural, seconds, size

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
T4_PLAIN = ["--env", str(ENVS / "t4_plain.json")]
T4_BNB = ["--env", str(ENVS / "t4_bnb_fa2.json")]
A100_X2 = ["--env", str(ENVS / "a100_40gb_x2_bnb.json")]
LLAMA3_8B = "meta-llama/Meta-Llama-3-8B"
LLAMA2_70B = "meta-llama/Llama-2-70b-hf"


@pytest.fixture(scope="module")
def t4_8b() -> Any:
    import advisor

    return advisor.recommend(LLAMA3_8B, env=ENVS / "t4_plain.json")


@pytest.fixture(scope="module")
def a100x2_70b() -> Any:
    import advisor

    return advisor.recommend(LLAMA2_70B, env=ENVS / "a100_40gb_x2_bnb.json")


# 1. Lead with the answer and its one fix.
def test_nothing_fits_leads_with_the_fix_that_unblocks_most(t4_8b: Any, cli: Any) -> None:
    assert not t4_8b.ok
    top = t4_8b.fixes[0]
    assert top.installs == "bitsandbytes" and top.unblocks > 0
    assert [f.unblocks for f in t4_8b.fixes] == sorted((f.unblocks for f in t4_8b.fixes), reverse=True)
    assert top.best == "sdpa / float16 + bnb 8bit / 1 GPU" and top.best_total_bytes < top.best_budget_bytes
    code, out, _ = cli("recommend", LLAMA3_8B, *T4_PLAIN)
    first = out.splitlines()[0]
    assert code == 1 and first.startswith("[XX] Nothing fits on 1 x T4") and "bitsandbytes" in first
    assert "`pip install -U bitsandbytes`" in first and "sdpa / float16 + bnb 8bit / 1 GPU" in first
    # the rejections come with the useful fix first
    assert t4_8b.rejected[0].fix == top.fix


def test_a_fix_that_needs_a_second_change_unblocks_nothing(t4_8b: Any) -> None:
    fa2 = next(f for f in t4_8b.fixes if f.installs == "flash-attn")
    assert fa2.unblocks == 0 and fa2.blocks > 0  # flash-attn alone cannot help a T4 (ATTN005 remains)


# 2. Rejection labels name the whole candidate; duplicates merged; -v for the full list.
def test_rejections_name_whole_candidates_and_fit_the_plan(a100x2_70b: Any) -> None:
    rec = a100x2_70b
    assert rec.chosen.label == "sdpa / bfloat16 + bnb 8bit / all GPUs"
    keys = [(r.code, r.message, r.fix) for r in rec.rejected]
    assert len(keys) == len(set(keys))
    for r in rec.rejected:
        assert r.candidates == len(r.labels) and r.label
        if r.code == "MEM001":
            one = "1 x A100-40GB" in r.message
            assert all(label.endswith(" / 1 GPU" if one else " / all GPUs") for label in r.labels)
            assert r.label.endswith("1 GPU" if one else "all GPUs")
            assert ('device_map="auto"' in r.fix) is one  # one-GPU plans next to a two-GPU choice say so
            if all("8bit" in label for label in r.labels):
                assert "8-bit or 4-bit" not in r.fix and "4-bit" in r.fix


def test_text_shows_a_count_and_top_reasons_and_v_shows_all(cli: Any, a100x2_70b: Any) -> None:
    _, short, _ = cli("recommend", LLAMA2_70B, *A100_X2)
    _, full, _ = cli("recommend", LLAMA2_70B, *A100_X2, "-v")
    total = len({label for r in a100x2_70b.rejected for label in r.labels})
    assert f"Rejected: {total} candidates, for {len(a100x2_70b.rejected)} reasons; the top 5 (-v lists all):" in short
    assert "the top" not in full and all(r.message in full for r in a100x2_70b.rejected)
    assert "8bit MEM001" not in short


# 3. Doctor reads like flutter doctor.
def test_doctor_folds_healthy_sections_and_counts(cli: Any) -> None:
    code, out, _ = cli("doctor", "--env", str(ENVS / "a100_80gb_fa2_bnb.json"))
    assert code == 0 and "[ok] Host (4 checks passed: OS, Python, CPU, RAM)" in out
    assert out.rstrip().endswith("Result: no problems or warnings")
    code, out, _ = cli("doctor", "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "-v")
    assert "    [ok] OS:" in out


def test_doctor_missing_blocking_library_is_a_problem_with_its_fix(cli: Any) -> None:
    code, out, _ = cli("doctor", LLAMA3_8B, *T4_PLAIN, "--format", "json")
    data = json.loads(out)
    items = {i["name"]: i for s in data["sections"] if s["title"] == "Kernels and libraries" for i in s["items"]}
    bnb = items["bitsandbytes"]
    assert code == 1 and bnb["status"] == "problem" and bnb["fix"] == "pip install bitsandbytes"
    assert items["flash-attn"]["fix"].startswith("pip install flash-attn")
    problems = sum(i["status"] == "problem" for s in data["sections"] for i in s["items"])
    assert data["problems"] == problems >= 1
    _, text, _ = cli("doctor", LLAMA3_8B, *T4_PLAIN)
    assert "[XX] bitsandbytes: missing" in text and "fix: pip install bitsandbytes" in text
    assert text.splitlines()[2].startswith("[XX] Nothing fits on 1 x T4")  # the answer first, as in recommend
    assert f"Result: {plural(problems, 'problem')}" in text
    for section in data["sections"]:
        for item in section["items"]:
            assert item["status"] not in ("warning", "problem") or item["fix"], item


# 4. --format python never writes anything but Python.
def test_python_format_without_a_plan_writes_nothing(cli: Any, tmp_path: Path) -> None:
    code, out, err = cli("recommend", LLAMA3_8B, *T4_PLAIN, "--format", "python")
    assert code == 1 and out == "" and err.count("\n") == 1 and "Nothing fits" in err
    target = tmp_path / "load.py"
    code, _, _ = cli("recommend", LLAMA3_8B, *T4_PLAIN, "--format", "python", "-o", str(target))
    assert code == 1 and not target.exists()
    code, out, _ = cli("recommend", LLAMA3_8B, *T4_BNB, "--format", "python")
    assert code == 0 and ast.parse(out)


# 5. Numbers for people.
def test_numbers_are_rounded_for_people() -> None:
    assert params(8.03e9) == "8.03B" and params(1_234_567) == "1.23M" and params(5e6) == "5.00M"
    assert size(3 * 1024**2) == "3.0 MiB" and size(int(1.5 * 1024**3)) == "1.5 GiB" and size(None) == "?"
    assert seconds(1.23456) == "1.23" and millis(12.345) == "12.3" and diff(0.000123456) == "1.2e-04"
    assert plural(1, "problem") == "1 problem" and plural(2, "problem") == "2 problems"


def test_a_tiny_model_reads_in_millions_and_mib(cli: Any, tiny_llama: Path) -> None:
    code, out, _ = cli("recommend", str(tiny_llama), "--cpu")
    assert code == 0 and "M params" in out and "0.00B" not in out and " 0.0 GiB" not in out


def test_smoke_and_bench_text_round_and_explain_question_marks() -> None:
    from advisor.prove.bench import WORKLOADS, BenchReport, BenchRow
    from advisor.render import text

    row = BenchRow(label="sdpa / float32 / CPU", from_pretrained={}, ok=True, decode_tokens_per_second=10.0, prefill_tokens_per_second=100.0,
                   ttft_ms=5.0, advisor_choice=True)
    report = BenchReport(model="m", device="cpu", workload=WORKLOADS["decode"], metric="decode", rows=[row],
                         advisor_choice=row.label, best=row.label, regret=1.0)
    out = text.render(report)
    assert "?" in out and "? = not known" in out


# 6. Correct labels.
def test_labels_say_what_they_are(cli: Any, tmp_path: Path) -> None:
    _, out, _ = cli("probe", "--no-import-check")
    assert out.startswith("Inference Advisor probe:")
    _, out, _ = cli("recommend", "gpt2", *T4_PLAIN)
    assert "Target: snapshot t4_plain.json (created 2026-11-25; t4_plain test profile)" in out
    assert "stored float32" in out and "stored unknown" not in out
    _, out, _ = cli("doctor", "--cpu")
    assert "GPU table" not in out and "none: no GPU" not in out and "GQA on ROCm" not in out
    _, out, _ = cli("doctor", "--gpu", "T4")
    assert "torch 2" in out and "assumed with CUDA for this target" in out
    _, out, _ = cli("doctor", "--cpu", "--assume", "flash-attn==2.8.3", "-v")
    line = next(x for x in out.splitlines() if "flash-attn:" in x)
    assert "assumed" in line and "imports and loads" not in line
    _, out, _ = cli("check", "gpt2", *T4_BNB, "--attn", "flash_attention_2", "--dtype", "float16")
    assert "1 problem: it will not work" in out and "problem(s)" not in out


def test_cpu_attn005_fix_does_not_mention_a_gpu_it_lacks() -> None:
    import advisor

    rec = advisor.recommend("gpt2", cpu=True)
    attn005 = [r for r in rec.rejected if r.code == "ATTN005"]
    assert attn005 and all("this GPU" not in r.fix for r in attn005)


def test_snapshot_label_names_file_date_and_host(tmp_path: Path) -> None:
    from advisor.probe.target import TargetSpec, resolve_target

    raw = json.loads((ENVS / "cpu_only.json").read_text())
    raw["description"] = "probed on this machine"
    raw["host"]["hostname"] = "gpu-box-7"
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(raw))
    env = resolve_target(TargetSpec(env_file=path))
    assert env.description.startswith("snapshot snap.json (created ") and env.description.endswith(" on gpu-box-7)")


# 7. Text, JSON and Markdown carry the same findings.
def test_why_t5_gets_float32_is_in_every_format(cli: Any) -> None:
    _, out, _ = cli("recommend", "google-t5/t5-base", *T4_BNB, "--format", "json")
    data = json.loads(out)
    assert data["chosen"]["candidate"]["dtype"] == "float32"
    assert any(p["rule"] == "DTYPE003" for p in data["passed_over"])
    _, text_out, _ = cli("recommend", "google-t5/t5-base", *T4_BNB)
    assert "DTYPE003" in text_out
    _, md, _ = cli("doctor", "google-t5/t5-base", *T4_BNB, "--format", "markdown")
    assert "DTYPE003" in md


def test_the_chosen_plans_warnings_reach_the_doctor() -> None:
    import advisor

    rec = advisor.recommend("google-t5/t5-base", env=ENVS / "t4_bnb_fa2.json", dtype="float16")
    assert any(f.code == "DTYPE003" for f in rec.chosen.findings)
    from advisor.plan.doctor_report import build_report

    report = build_report(advisor.target_environment(env=ENVS / "t4_bnb_fa2.json"), [], rec)
    names = {i.name for s in report.sections for i in s.items}
    assert "DTYPE003" in names


# 8. The 8-bit quantization_config carries only 8-bit keys.
def test_8bit_config_is_minimal_and_reads_back_the_same() -> None:
    transformers = pytest.importorskip("transformers")
    from advisor.plan.emit import bnb_config, to_kwargs

    eight = bnb_config("8bit", "bfloat16")
    assert eight == {"quant_method": "bitsandbytes", "load_in_8bit": True}
    assert not any(k.startswith("bnb_4bit") for k in eight)
    full = transformers.BitsAndBytesConfig(load_in_8bit=True).to_dict()
    assert to_kwargs({"quantization_config": eight})["quantization_config"].to_dict() == full
    four = bnb_config("4bit", "float16")
    real = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                           bnb_4bit_compute_dtype="float16").to_dict()
    assert to_kwargs({"quantization_config": four})["quantization_config"].to_dict() == real


def test_recommended_8bit_plan_has_no_4bit_keys(a100x2_70b: Any) -> None:
    qc = a100x2_70b.from_pretrained["quantization_config"]
    assert qc["load_in_8bit"] is True and not any(k.startswith("bnb_4bit") for k in qc)


# 9. advisor matrix.
def test_matrix_has_fa4_sorted_rows_and_filters(cli: Any) -> None:
    code, out, _ = cli("matrix", "--format", "json")
    data = json.loads(out)
    types = [a["model_type"] for a in data["architectures"]]
    assert code == 0 and types == sorted(types) and all("flash_attention_4" in a for a in data["architectures"])
    code, out, _ = cli("matrix", "--format", "json", "--model-type", "llama", "--model-type", "gpt2")
    assert [a["model_type"] for a in json.loads(out)["architectures"]] == ["gpt2", "llama"]
    code, out, _ = cli("matrix", "--model-type", "llama")
    assert "flash_attention_4" in out.splitlines()[2]
    code, _, err = cli("matrix", "--model-type", "lama")
    assert code == 2 and "did you mean llama" in err


def test_matrix_names_the_release_that_answers(cli: Any) -> None:
    code, out, _ = cli("matrix", "--transformers", "4.42.0", "--format", "json", "--model-type", "llama")
    data = json.loads(out)
    assert code == 0 and data["requested"] == "4.42.0" and data["transformers"] == "4.42.4"
    assert "4.42.4" in data["answered_by"] and "stored patch of 4.42" in data["answered_by"]
    code, _, err = cli("matrix", "--transformers", "4.99.0")  # issue 31: no 4.99 was ever released
    assert code == 2 and "not a release" in err and err.count("\n") == 1
    code, _, err = cli("matrix", "--transformers", "99.0.0")
    assert code == 2 and "newer than any stored release" in err and err.count("\n") == 1


# 10. Help and links.
def test_every_option_has_help() -> None:
    from advisor.cli import build_parser

    missing = []
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_docs_url_resolves_with_explain(cli: Any, t4_8b: Any) -> None:
    from advisor.rules import RULES

    urls = {f.docs_url for f in t4_8b.findings} | {f"advisor explain {r.code}" for r in RULES}
    for url in urls:
        assert url.startswith("advisor explain ")
        code, out, _ = cli(*url.split()[1:])
        rule = next(r for r in RULES if r.code == url.split()[-1])
        assert code == 0 and rule.title in out and rule.fix in out
    code, _, err = cli("explain", "NOPE042")
    assert code == 2 and "no rule" in err


# 11. Offline downloads fail fast, in one line.
@pytest.mark.parametrize("environ", [{"HF_ENDPOINT": "http://127.0.0.1:9"}, {"HF_HUB_OFFLINE": "1"}])
def test_offline_download_is_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    code, out, err = cli("recommend", "no-such-org/no-such-model", "--cpu", "--allow-download")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot download 'no-such-org/no-such-model'" in err


def test_unreachable_hub_is_bounded_by_the_timeout() -> None:
    from advisor.errors import ModelResolutionError
    from advisor.io.hub_reach import check_hub_reachable

    with pytest.raises(ModelResolutionError, match="unreachable"):
        check_hub_reachable("x/y", timeout=0.5, environ={"HF_ENDPOINT": "http://127.0.0.1:9"})
