"""Issue 30: tensor parallel or device_map, advised from the release's facts and proven on CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge import load_knowledge
from advisor.knowledge.tp_plans import tp_plan_for

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ facts read from the wheels


def test_tp_facts_per_release_cite_their_lines() -> None:
    releases = load_knowledge().releases
    assert releases.at("distributed_config", "4.53.3").value is None
    first = releases.first_where("distributed_config", bool)
    assert first is not None and first.first == "4.54.1" and first.file.endswith("configuration_utils.py")
    assert first.line is not None
    kwarg = releases.first_where("tp_plan_kwarg", bool)
    assert kwarg is not None and kwarg.first == "4.47.1" and kwarg.file.endswith("modeling_utils.py")
    assert releases.at("tp_plan_kwarg", "5.15.1").value is None  # that release reads no tp_plan kwarg
    assert releases.at("tp_quant_fp8", "5.25.0").value is True
    assert releases.at("tp_quant_fp8", "5.0.0").value is None


def test_tp_plan_table_per_model_type() -> None:
    releases = load_knowledge().releases
    llama = tp_plan_for("llama", "5.25.0", releases)
    assert llama.exists and llama.plan["layers.*.self_attn.k_proj"] == "colwise"
    assert llama.head == {"lm_head": "colwise_gather_output"}
    assert "configuration_llama.py:" in llama.cite
    for model_type in ("opt", "falcon", "bloom", "mamba", "whisper"):  # the list: no plan in 5.25
        plan = tp_plan_for(model_type, "5.25.0", releases)
        assert plan.known and not plan.exists, model_type
    assert not tp_plan_for("llama", "4.46.3", releases).exists  # before from_pretrained read tp_plan
    assert not tp_plan_for("llama", "99.0.0", releases).known


# ------------------------------------------------------------------ rules through the CLI


def _json(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out)
    return data


def test_check_tp4_on_two_kv_heads_exits_1_naming_the_rule(cli: Any, tiny_llama: Path) -> None:
    code, out, err = cli("check", str(tiny_llama), "--cpu", "--tp", "4")
    assert code == 1, err
    assert "TP004" in out and "2 KV heads" in out
    code, out, _ = cli("check", str(tiny_llama), "--cpu", "--tp", "4", "--format", "json")
    data = _json(out)
    assert code == 1 and not data["ok"]
    assert [f["code"] for f in data["failures"]] == ["TP004"]
    assert data["parallelism"]["kind"] == "none"


def test_check_tp2_passes_with_distributed_config(cli: Any, tiny_llama: Path) -> None:
    code, out, err = cli("check", str(tiny_llama), "--cpu", "--tp", "2", "--format", "json")
    assert code == 0, err
    p = _json(out)["parallelism"]
    assert p["kind"] == "tensor" and p["size"] == 2
    assert p["from_pretrained"]["distributed_config"] == {"tp_size": 2, "tp_plan": "auto"}
    assert "device_map" not in p["from_pretrained"]
    assert p["launch"] == "torchrun --nproc-per-node 2 script.py"
    rank = p["per_rank"]
    assert rank["sharded_weights_bytes"] > 0 and rank["replicated_weights_bytes"] == 1000 * 64 * 4  # embeddings


def test_model_type_without_tp_plan_is_refused(cli: Any, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                                    vocab_size=1000, max_position_embeddings=256, word_embed_proj_dim=64)
    transformers.OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    code, out, _ = cli("check", str(tmp_path / "opt"), "--cpu", "--tp", "2")
    assert code == 1
    assert "TP001 opt has no tensor-parallel plan" in out


def test_release_without_distributed_config(cli: Any, tiny_llama: Path) -> None:
    code, out, _ = cli("check", str(tiny_llama), "--cpu", "--tp", "2", "--assume", "transformers==4.46.3")
    assert code == 1 and "TP002" in out and "TP001" not in out  # the release, not the model, is the reason
    code, out, err = cli("check", str(tiny_llama), "--cpu", "--tp", "2", "--assume", "transformers==4.50.3",
                         "--format", "json")
    assert code == 0, err
    p = _json(out)["parallelism"]
    assert p["from_pretrained"]["tp_plan"] == "auto" and "distributed_config" not in p["from_pretrained"]


def test_recommend_70b_on_two_h100_chooses_tensor_parallel(cli: Any) -> None:
    code, out, err = cli("recommend", "meta-llama/Llama-2-70b-hf", "--gpu", "H100", "--gpu", "H100")
    assert code == 0, err
    assert "Parallelism: tensor parallel, 2 ranks" in out
    assert "launch: torchrun --nproc-per-node 2 script.py" in out
    assert "NVLink between every pair (gpu-table)" in out
    assert "(prediction, not measured)" in out
    assert "KeyError: 'RANK'" in out


def test_recommend_70b_over_pcie_keeps_device_map(cli: Any) -> None:
    code, out, _ = cli("recommend", "meta-llama/Llama-2-70b-hf", "--gpu", "H100-PCIE", "--gpu", "H100-PCIE",
                       "--format", "json")
    assert code == 0
    p = _json(out)["parallelism"]
    assert p["kind"] == "pipeline" and p["from_pretrained"]["device_map"] == "auto"
    assert any("PCIe" in r and "prediction" in r for r in p["reasons"])
    assert [f["code"] for f in p["findings"]] == ["TP006"]


def test_recommend_tp_refused_exits_1(cli: Any, tiny_llama: Path) -> None:
    code, out, _ = cli("recommend", str(tiny_llama), "--cpu", "--tp", "4", "--format", "json")
    assert code == 1
    assert _json(out)["parallelism"]["findings"][0]["code"] == "TP004"


# ------------------------------------------------------------------ proof on CPU processes


def test_smoke_tp2_on_cpu_processes_matches_one_process(cli: Any, tiny_llama: Path) -> None:
    code, out, err = cli("smoke", str(tiny_llama), "--cpu", "--tp", "2", "--format", "json", "--timeout", "300")
    assert code == 0, out + err
    report = _json(out)
    attempt = report["attempts"][0]
    assert attempt["ok"] and attempt["max_abs_diff"] <= attempt["max_abs_diff_tolerance"] == 1e-4
    assert attempt["from_pretrained"]["distributed_config"]["tp_size"] == 2
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    for rank in report["ranks"]:
        assert rank["ok"] and rank["sharded_parameters"] > 0  # the weights really are DTensors
        assert rank["peak_rss_bytes"] >= rank["baseline_rss_bytes"] > 0 and rank["planned_bytes"] > 0


def test_smoke_tp4_is_refused_before_any_load(cli: Any, tiny_llama: Path) -> None:
    code, out, _ = cli("smoke", str(tiny_llama), "--cpu", "--tp", "4")
    assert code == 1
    assert "TP004" in out and "never loaded" in out


def test_smoke_tp_needs_cpu(cli: Any, tiny_llama: Path) -> None:
    code, _, err = cli("smoke", str(tiny_llama), "--tp", "2")
    assert code == 2 and "add --cpu" in err


def test_python_snippet_runs_under_torchrun(cli: Any, tiny_llama: Path, tmp_path: Path) -> None:
    script = tmp_path / "load_tp.py"
    code, _, err = cli("recommend", str(tiny_llama), "--cpu", "--tp", "2", "--format", "python", "-o", str(script))
    assert code == 0, err
    text = script.read_text(encoding="utf-8")
    assert "DistributedConfig(tp_size=2" in text and "torchrun --nproc-per-node 2" in text
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    direct = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert direct.returncode != 0 and "torchrun --nproc-per-node 2" in direct.stderr  # not a KeyError: 'RANK'
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(_port()), str(script)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1  # rank 0, and only rank 0, printed the decoded generation


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workers_alive() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "advisor.prove.tp_worker" in cmd and "tp-smoke-" in cmd:
            found.append(cmd)
    return found


def test_smoke_tp_names_and_kills_hung_ranks(cli: Any, tiny_llama: Path) -> None:
    """A timeout shorter than any load: the reference and both ranks are killed, the report names each rank."""
    code, out, _ = cli("smoke", str(tiny_llama), "--cpu", "--tp", "2", "--timeout", "1.5", "--format", "json")
    assert code == 1
    report = _json(out)
    assert "reference failed (timed out)" in report["reference"]
    errors = [r["error"] for r in report["ranks"]]
    assert errors == [f"rank {r} hung: no result after 1.5 s, killed" for r in (0, 1)]
    assert not _workers_alive()


@pytest.mark.parametrize(("kind", "level", "expected"), [("nvlink", None, "tensor"), ("pcie", "system", "none")])
def test_probed_links_decide_between_tensor_and_pipeline(cli: Any, tmp_path: Path, kind: str, level: str | None,
                                                        expected: str) -> None:
    """A probed 2 x A100-40GB snapshot (old, without links: still loads) with the links NVML would record; an 8B
    fits one card, so TP is for --prefer speed, and only over NVLink."""
    raw = json.loads((REPO / "tests/fixtures/envs/a100_40gb_x2_bnb.json").read_text(encoding="utf-8"))
    assert "links" not in raw
    code, out, _ = cli("recommend", "meta-llama/Meta-Llama-3-8B", "--env",
                       str(REPO / "tests/fixtures/envs/a100_40gb_x2_bnb.json"), "--dtype", "bfloat16", "--quantize",
                       "none", "--prefer", "speed", "--format", "json")
    assert code == 0 and "unknown" in " ".join(_json(out)["parallelism"]["reasons"])
    raw["links"] = [{"a": 0, "b": 1, "kind": kind, "nvlink_links": 12 if kind == "nvlink" else 0,
                     "pcie_level": level, "source": "nvml"}]
    snapshot = tmp_path / "env.json"
    snapshot.write_text(json.dumps(raw), encoding="utf-8")
    code, out, err = cli("recommend", "meta-llama/Meta-Llama-3-8B", "--env", str(snapshot), "--dtype", "bfloat16",
                         "--quantize", "none", "--prefer", "speed", "--format", "json")
    assert code == 0, err
    p = _json(out)["parallelism"]
    assert p["kind"] == expected, p["reasons"]


def test_ignore_a_tp_rule(cli: Any) -> None:
    """--ignore TP006 drops the PCIe warning from the findings; the choice still follows the links."""
    code, out, _ = cli("recommend", "meta-llama/Llama-2-70b-hf", "--gpu", "H100-PCIE", "--gpu", "H100-PCIE",
                       "--ignore", "TP006", "--format", "json")
    assert code == 0
    p = _json(out)["parallelism"]
    assert p["kind"] == "pipeline"  # links still say PCIe: the rule's warning is gone, the choice is not
    assert p["findings"] == []


def test_check_tp_judges_memory_per_rank(cli: Any) -> None:
    """A 70B in bf16 does not fit one H100; with --tp 2 each rank holds half: TP005 judges, not MEM001."""
    code, out, _ = cli("check", "meta-llama/Llama-2-70b-hf", "--gpu", "H100", "--gpu", "H100", "--dtype", "bfloat16")
    assert code == 1 and "MEM001" in out
    code, out, err = cli("check", "meta-llama/Llama-2-70b-hf", "--gpu", "H100", "--gpu", "H100", "--dtype",
                         "bfloat16", "--tp", "2")
    assert code == 0, out + err
    code, out, _ = cli("check", "meta-llama/Llama-2-70b-hf", "--gpu", "H100", "--gpu", "H100", "--dtype",
                       "bfloat16", "--tp", "4")
    assert code == 1 and "TP008" in out and "MEM001" not in out  # 4 ranks would fit; 2 GPUs cannot hold them


def test_tp4_on_two_kv_heads_really_fails_mid_forward(tiny_llama: Path, tmp_path: Path) -> None:
    """TP004's premise on this release: every rank loads, then the forward fails on k_proj's shape."""
    script = tmp_path / "tp4.py"
    script.write_text(
        "import os, torch\n"
        "from transformers import AutoModelForCausalLM, DistributedConfig\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tiny_llama)!r}, dtype=torch.float32,\n"
        "    distributed_config=DistributedConfig(tp_size=int(os.environ['WORLD_SIZE']), tp_plan='auto'))\n"
        "print('loaded', flush=True)\n"
        "m(input_ids=torch.randint(3, 1000, (1, 8)))\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4", "--master-addr",
                           "127.0.0.1", "--master-port", str(_port()), str(script)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert proc.stdout.count("loaded") == 4
    assert "is invalid for input of size" in proc.stderr
