"""Issue 17 item 4: quantization methods other than bitsandbytes as plan candidates, judged by QUANT008.

A method is a candidate only where data/quant_methods.json says it can run on the target: its libraries
installed at the version transformers asks for (`validate_environment` of `quantizers/quantizer_<x>.py`), the
compute capability met (fine-grained FP8 >= 8.9: `quantizers/quantizer_finegrained_fp8.py` lines 48-54 in 5.24.0),
and a GPU where it needs one. Pre-quantized formats (GPTQ, AWQ, compressed-tensors, MXFP4) need a checkpoint in
that format and are never planned for a plain one. Hardware is faked only as snapshot data (tests/fixtures/envs);
the quanto smoke loads a real tiny model with the real optimum-quanto where it is installed.
"""

from __future__ import annotations

import ast
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import transformers

from advisor.candidate import Candidate
from advisor.knowledge.quant_methods import METHOD_QUANTIZATIONS, load_methods
from advisor.model.resolve import resolve_model
from advisor.plan.emit import from_pretrained_json, python_snippet, quantization_of, to_kwargs
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment
from advisor.rules.method_readiness import doctor_rows, ready_quantizations

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
TF_ROOT = Path(transformers.__file__).parent


def _universe(rec: Any) -> set[str]:
    labels = {o.label for o in ([rec.chosen] if rec.chosen else []) + rec.alternatives}
    return labels | {label for r in rec.rejected for label in r.labels}


def test_candidate_keys_are_one_list() -> None:
    """The table's candidate keys, the planner's list and the Candidate type agree."""
    table = tuple(m.candidate.key for m in load_methods() if m.candidate)
    assert table == METHOD_QUANTIZATIONS
    literal = typing.get_args(Candidate.model_fields["quantization"].annotation)
    assert set(literal) == {"none", "8bit", "4bit", *METHOD_QUANTIZATIONS}
    assert not any(m.candidate for m in load_methods() if m.mode == "pre-quantized")


def test_fp8_plans_mixtral_on_an_h100() -> None:
    """bitsandbytes leaves Mixtral's fused experts in bf16 (QUANT007); fine-grained FP8 turns `.experts` into
    FP8Experts (integrations/finegrained_fp8.py:967 in 5.25.0) and the H100 (9.0) meets its 8.9; its matmul, a Hub kernel
    from 5.4, is in this target's cache (tests/unit/test_fp8_kernel.py covers the targets where it is not)."""
    rec = make_plan(resolve_model("mistralai/Mixtral-8x7B-v0.1"), load_environment(ENVS / "h100_fp8_kernel_cached.json"))
    assert rec.ok and rec.chosen is not None
    assert rec.chosen.candidate.quantization == "fp8"
    assert rec.from_pretrained is not None and rec.from_pretrained["quantization_config"] == {"quant_method": "fp8"}
    assert rec.memory is not None and rec.memory.weights_bytes / 2**30 < 46.7  # ~1 byte per non-embedding weight
    assert any(r.code == "QUANT007" and r.option == "4bit" for r in rec.rejected)


def test_capability_too_low_gives_no_fp8_candidate_and_check_says_why(cli: Any) -> None:
    a100 = load_environment(ENVS / "a100_80gb_fa2_bnb.json")
    assert "fp8" not in ready_quantizations(a100, a100.gpu_list[0].compute_capability, "gpu")
    rec = make_plan(resolve_model("mistralai/Mixtral-8x7B-v0.1"), a100)
    assert not any("fp8" in label for label in _universe(rec))
    code, out, _ = cli("check", "mistralai/Mixtral-8x7B-v0.1", "--quantize", "fp8", "--dtype", "bfloat16",
                       "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--format", "json")
    assert code == 1
    finding = next(f for f in json.loads(out)["failures"] if f["code"] == "QUANT008")
    assert "compute capability 8.0 < 8.9" in finding["message"]
    assert "quantizers/quantizer_finegrained_fp8.py:31-59" in finding["message"]


def test_library_absent_no_candidate_library_present_a_candidate() -> None:
    absent, present = load_environment(ENVS / "cpu_only.json"), load_environment(ENVS / "cpu_quanto.json")
    assert ready_quantizations(absent, None, "cpu") == []
    assert ready_quantizations(present, None, "cpu") == ["quanto-int8"]
    model = resolve_model("tiiuae/falcon-7b")
    assert not any("quanto" in label for label in _universe(make_plan(model, absent)))
    rec = make_plan(model, present, PlanRequest(dtype="bfloat16"))
    assert any("quanto-int8" in label for label in _universe(rec))


def test_check_a_method_that_is_not_installed(cli: Any) -> None:
    code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "quanto-int8", "--dtype", "bfloat16",
                       "--env", str(ENVS / "cpu_only.json"), "--format", "json")
    assert code == 1
    finding = next(f for f in json.loads(out)["failures"] if f["code"] == "QUANT008")
    assert "optimum-quanto (not installed)" in finding["message"]
    assert finding["fix"] == "pip install 'optimum-quanto'"


def test_quanto_takes_falconlinear_and_its_weight_figure_shrinks() -> None:
    """integrations/quanto.py:91 isinstance(module, nn.Linear): FalconLinear is replaced, unlike bitsandbytes."""
    from advisor.estimate.memory import weight_bytes

    model = resolve_model("tiiuae/falcon-7b")
    assert model.quantizable_param_count == 0
    bnb, quanto = weight_bytes(model, "bfloat16", "8bit"), weight_bytes(model, "bfloat16", "quanto-int8")
    assert bnb == model.param_count * 2
    embeddings = 2 * model.vocab_size * model.hidden_size
    assert quanto == (model.param_count - embeddings) + embeddings * 2


def test_fp8_would_quantize_little_of_falcon(cli: Any) -> None:
    """Fine-grained FP8 replaces `type(module) is nn.Linear` (integrations/finegrained_fp8.py:981): not FalconLinear."""
    code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "fp8", "--dtype", "bfloat16",
                       "--env", str(ENVS / "h100_fp8_kernel_cached.json"), "--format", "json")
    assert code == 1
    finding = next(f for f in json.loads(out)["failures"] if f["code"] == "QUANT008")
    assert "would quantize little of this model: the projections are FalconLinear" in finding["message"]


def test_pre_quantized_methods_are_never_planned_for_a_plain_checkpoint() -> None:
    """GPTQ / AWQ / compressed-tensors / MXFP4 load checkpoints already in their format: doctor lists them, the
    planner does not offer them for a bf16 checkpoint, even with their libraries installed."""
    from advisor.probe.target import TargetSpec, resolve_target

    env = resolve_target(TargetSpec(env_file=ENVS / "h100_fa2_fa3_bnb.json", assume=(
        "gptqmodel==5.0.0", "optimum==1.27.0", "compressed-tensors==0.15.0", "triton==3.5.0", "kernels==0.18.2")))
    cc = env.gpu_list[0].compute_capability
    assert ready_quantizations(env, cc, "gpu") == ["fp8"]
    rows = {name: value for name, _status, value, _fix in doctor_rows(env, cc)}  # type: ignore[arg-type]
    assert rows["gptq"].startswith("usable") and "planned as" not in rows["gptq"]
    assert "planned as --quantize fp8" in rows["fp8"]


def test_doctor_cites_validate_environment_of_the_installed_release() -> None:
    env = load_environment(ENVS / "t4_bnb_fa2.json")
    rows = {name: value for name, _s, value, _f in doctor_rows(env, env.gpu_list[0].compute_capability)}  # type: ignore[arg-type]
    for m in load_methods():
        lines = (TF_ROOT / m.quantizer).read_text().splitlines()
        number = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("def validate_environment("))
        assert f"[transformers {transformers.__version__} {m.quantizer}:{number} validate_environment]" in rows[m.key]


@pytest.mark.parametrize("key", METHOD_QUANTIZATIONS)
def test_emitted_configs_round_trip(key: str) -> None:
    candidate = Candidate(attn="sdpa", dtype="bfloat16", quantization=key)  # type: ignore[arg-type]
    kwargs = from_pretrained_json(candidate, transformers_version=transformers.__version__)
    assert quantization_of(kwargs) == key
    snippet = python_snippet(model_name="m", auto_class="AutoModelForCausalLM", kwargs=kwargs, tokenizer={},
                             generative=True)
    ast.parse(snippet)
    method = next(m for m in load_methods() if m.candidate and m.candidate.key == key)
    assert method.candidate is not None and f"quantization_config = {method.candidate.python}" in snippet
    if key == "quanto-int8":  # its config class builds without the library; the others check for it
        live = to_kwargs(kwargs)["quantization_config"]
        assert type(live).__name__ == "QuantoConfig" and live.weights == "int8"


def test_real_quanto_smoke_on_cpu_quantizes_falconlinear(cli: Any, tmp_path: Path) -> None:
    """Where optimum-quanto is installed: a real tiny falcon loads with QuantoConfig(weights="int8") and its
    FalconLinear projections become QLinear (bitsandbytes replaced 0 of them: docs/quantization.md)."""
    pytest.importorskip("optimum.quanto")
    import torch

    config = transformers.AutoConfig.for_model("falcon", vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=4)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    code, out, err = cli("smoke", str(tmp_path), "--cpu", "--quantize", "quanto-int8", "--dtype", "bfloat16",
                         "--attn", "sdpa", "--format", "json")
    assert code == 0, err
    attempt = json.loads(out)["attempts"][0]
    assert attempt["ok"] and attempt["label"] == "sdpa / bfloat16 + quanto-int8 / CPU"
    assert attempt["quantization"]["quantized_modules"] == {"QLinear": 8}
    assert (attempt["quantization"]["quantized_weights"], attempt["quantization"]["linear_weights"]) == (8, 9)
