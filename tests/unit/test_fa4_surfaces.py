"""Issue 29: FA4 wherever a user looks, on this CPU box: smoke and bench refuse it with the reason, doctor runs
the kernels at the model's own head_dim and dtype (reusing the probe's runs where they cover it), and the
kernel worker really runs at a head_dim other than the probe's 64/128.

Hardware is data: the H100 snapshots of tests/fixtures/envs and docs/examples; the kernel runs on the CPU are real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advisor.probe.kernels import KernelSpec, run_kernels
from advisor.probe.model_kernels import model_kernel_runs
from advisor.probe.target import load_environment

ROOT = Path(__file__).resolve().parents[2]
H100 = ROOT / "docs" / "examples" / "h100-probe.json"


def test_smoke_refuses_fa4_on_the_cpu_with_the_reason(cli: Any, tiny_llama: Path) -> None:
    code, out, err = cli("smoke", str(tiny_llama), "--cpu", "--attn", "flash_attention_4")
    assert code == 2
    assert "flash_attention_4 needs a GPU; this target has none" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bench_refuses_fa4_on_the_cpu_with_the_reason(cli: Any, tiny_llama: Path) -> None:
    code, out, err = cli("bench", str(tiny_llama), "--cpu", "--attn", "flash_attention_4", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["rows"] == [] and report["advisor_choice"] is None
    assert "no viable configuration to time (flash_attention_4: flash_attention_4 needs a GPU" in report["note"]
    code, out, _ = cli("bench", str(tiny_llama), "--cpu", "--attn", "flash_attention_4")
    assert "Note: no viable configuration to time (flash_attention_4: flash_attention_4 needs a GPU" in out


def _section(report: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in report["sections"] if s["title"].startswith("Kernel runs at this model's"))


def test_doctor_reuses_the_probe_runs_at_the_models_head_dim(cli: Any) -> None:
    code, out, _ = cli("doctor", "meta-llama/Meta-Llama-3-8B", "--env", str(H100), "--format", "json")
    section = _section(json.loads(out))
    assert section["title"] == "Kernel runs at this model's head_dim 128, bfloat16 (the probe's runs)"
    assert {i["name"]: i["status"] for i in section["items"]}["sdpa_flash"] == "ok"


def test_doctor_on_a_snapshot_says_which_head_dim_was_not_run(cli: Any) -> None:
    code, out, _ = cli("doctor", "google/gemma-7b", "--env", str(H100))  # head_dim 256
    assert "Kernel runs at this model's head_dim 256, bfloat16 (the snapshot ran head_dim 64, 128" in out
    assert "sdpa_flash: not run at head_dim 256" in out


def test_the_kernel_worker_runs_at_the_requested_head_dim() -> None:
    runs = run_kernels([KernelSpec("sdpa_math")], device="cpu", dtypes=["float32"], head_dims=[80])
    run = runs["sdpa_math"]
    assert run.runs is True
    assert [(c.dtype, c.head_dim, c.runs) for c in run.cases] == [("float32", 80, True)]


def test_a_live_machine_runs_the_missing_case(monkeypatch: Any) -> None:
    env = load_environment(H100)
    env = env.model_copy(update={"kernel_runs": {k: env.kernel_runs[k] for k in ("sdpa_math", "sdpa_flash")}})
    result = model_kernel_runs(env, 80, "float32", live=True, device="cpu")
    assert result.source == "run now on cpu"
    assert result.runs["sdpa_math"].runs is True and result.runs["sdpa_math"].cases[0].head_dim == 80
    assert "no float32 kernel" in str(result.runs["sdpa_flash"].runs)


def test_fa4_head_dim_gate_per_gpu_generation_from_the_wheel(cli: Any, tmp_path: Path) -> None:
    """flash-attn-4 4.0.0b36 asserts head_dim <= 128 (or 256) on SM100/SM110 but <= 256 on SM90."""
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 3072,
              "intermediate_size": 8192, "num_hidden_layers": 4, "num_attention_heads": 16, "num_key_value_heads": 4,
              "head_dim": 192, "vocab_size": 32000, "max_position_embeddings": 4096}
    (tmp_path / "config.json").write_text(json.dumps(config))
    fa4 = ("--assume", "flash-attn-4==4.0.0b36", "--attn", "flash_attention_4", "--dtype", "bfloat16",
           "--format", "json")
    code, out, _ = cli("check", str(tmp_path), "--gpu", "B200", *fa4)
    failures = json.loads(out)["failures"]
    assert code == 1 and [f["code"] for f in failures] == ["ATTN007"]
    assert "supports head_dim <= 128 or 256 on compute capability 10.0; this model has 192" in failures[0]["message"]
    assert "flash_attn/cute/interface.py:134-138" in failures[0]["message"]
    code, out, _ = cli("check", str(tmp_path), "--gpu", "H100-80GB", *fa4)
    assert code == 0 and json.loads(out)["ok"]
