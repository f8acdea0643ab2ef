"""Issue 17: a checkpoint that is already quantized (GPTQ, AWQ, bitsandbytes, FP8, MXFP4 ...) is planned as what
it is: its own method's libraries (QUANT009), its stored bits in the weight figure, no quantization of its own.

The quantization configs are written by transformers' own config classes (`GPTQConfig(...).to_dict()`), the model
is a real tiny Llama written with `save_pretrained`, and the targets are snapshot data (tests/fixtures/envs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import transformers
from transformers import AwqConfig, BitsAndBytesConfig, FineGrainedFP8Config, GPTQConfig, Mxfp4Config

from advisor.model.prequantized import read_checkpoint_quantization
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"


def _dict(config: Any) -> dict[str, Any]:
    """What save_pretrained writes into config.json for this quantization config."""
    return json.loads(json.dumps(config.to_dict(), default=str))


@pytest.mark.parametrize(("config", "bits", "label"), [
    (GPTQConfig(bits=4, group_size=128), 4 + 20 / 128, "GPTQ 4-bit, group 128"),
    (GPTQConfig(bits=8, group_size=-1), 8.0, "GPTQ 8-bit"),
    (AwqConfig(bits=4, group_size=64), 4 + 20 / 64, "AWQ 4-bit, group 64"),
    (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"), 4.5, "bitsandbytes 4-bit nf4"),
    (BitsAndBytesConfig(load_in_8bit=True), 8.0, "bitsandbytes 8-bit"),
    (FineGrainedFP8Config(), 8.0, "FP8 float8"),
    (Mxfp4Config(), 4.25, "MXFP4 4-bit e2m1, scale per 32"),
])
def test_the_stored_bits_come_from_the_config_class_fields(config: Any, bits: float, label: str) -> None:
    q = read_checkpoint_quantization({"model_type": "llama", "quantization_config": _dict(config)})
    assert q is not None and q.bits == pytest.approx(bits) and q.label == label


def test_compressed_tensors_and_unknown_methods() -> None:
    ct = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "group_size": 128, "symmetric": True}}}}
    q = read_checkpoint_quantization({"quantization_config": ct})
    assert q is not None and q.method_key == "compressed_tensors" and q.bits == pytest.approx(4 + 16 / 128)
    odd = read_checkpoint_quantization({"quantization_config": {"quant_method": "vptq"}})
    assert odd is not None and odd.bits is None and odd.method_key == "vptq"
    assert read_checkpoint_quantization({"model_type": "llama"}) is None
    assert read_checkpoint_quantization({"quantization_config": "gptq"}) is None


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Llama-shaped checkpoint folder (config only: planning never reads the weights)."""
    folder = tmp_path_factory.mktemp("llama")
    config = transformers.LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                                      num_attention_heads=16, num_key_value_heads=4, vocab_size=32000)
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(folder)
    return folder


def _quantized_copy(src: Path, dst: Path, quantization: dict[str, Any]) -> Path:
    raw = json.loads((src / "config.json").read_text())
    dst.mkdir()
    (dst / "config.json").write_text(json.dumps({**raw, "quantization_config": quantization}))
    return dst


def test_a_gptq_checkpoint_needs_its_library_and_weighs_its_bits(tiny_llama: Path, tmp_path: Path) -> None:
    """On an A100 without gptqmodel every candidate fails QUANT009 with the install as the fix; with it, the
    plan passes no quantization_config (transformers reads the checkpoint's) and weighs 4-bit weights."""
    gptq = _quantized_copy(tiny_llama, tmp_path / "gptq", _dict(GPTQConfig(bits=4, group_size=128)))
    a100 = load_environment(ENVS / "a100_80gb_fa2_bnb.json")
    plain = make_plan(resolve_model(str(tiny_llama)), a100, request=PlanRequest(dtype="float16", attn="sdpa"))
    rec = make_plan(resolve_model(str(gptq)), a100, request=PlanRequest(dtype="float16", attn="sdpa"))
    assert not rec.ok
    rejection = next(r for r in rec.rejected if r.code == "QUANT009")
    assert "gptqmodel" in rejection.message and rejection.fix == "pip install gptqmodel optimum"
    assert "quantizer_gptq.py" in rejection.message and "executed" in rejection.message
    assert {lbl.split(" + ")[0] for r in rec.rejected for lbl in r.labels} == {"sdpa / float16 / 1 GPU"}

    ready = a100.model_copy(update={"libraries": {
        **a100.libraries,
        **{name: a100.libraries["accelerate"].model_copy(update={"name": name, "version": version})
           for name, version in (("gptqmodel", "2.0.0"), ("optimum", "1.25.0"))},
    }})
    rec = make_plan(resolve_model(str(gptq)), ready, request=PlanRequest(dtype="float16", attn="sdpa"))
    assert rec.ok and rec.from_pretrained is not None and "quantization_config" not in rec.from_pretrained
    assert plain.memory is not None and rec.memory is not None
    model = resolve_model(str(gptq))
    embeddings = 2 * model.vocab_size * model.hidden_size * 2  # input and output embeddings stay float16
    linear = model.param_count - 2 * model.vocab_size * model.hidden_size
    assert rec.memory.weights_bytes == pytest.approx(linear * (4 + 20 / 128) / 8 + embeddings, rel=0.01)
    # GPTQ's update_dtype keeps a requested bfloat16 in 5.24.0 (executed; it only logs a float16 suggestion at
    # info level), so no dtype warning, unlike AWQ's cast to float16
    auto = make_plan(resolve_model(str(gptq)), ready)
    assert auto.chosen is not None
    assert not any(f.code == "QUANT009" for o in [auto.chosen, *auto.alternatives] for f in o.findings)
    # the unquantized plan of the same folder weighs those linear weights at 2 bytes each
    assert plain.memory.weights_bytes - rec.memory.weights_bytes == pytest.approx(linear * (2 - (4 + 20 / 128) / 8), rel=0.02)


def test_quantizing_a_quantized_checkpoint_is_refused(tiny_llama: Path, tmp_path: Path, cli: Any) -> None:
    """transformers raises ValueError for a quantization_config of another class (quantizers/auto.py:259-266 in
    5.24.0): `recommend --quantize` is a usage error, `check` with one fails QUANT009."""
    gptq = _quantized_copy(tiny_llama, tmp_path / "gptq", _dict(GPTQConfig(bits=4, group_size=128)))
    code, out, err = cli("recommend", str(gptq), "--gpu", "A100-80GB", "--quantize", "4bit")
    assert code == 2 and "already quantized (GPTQ 4-bit, group 128)" in err and "Traceback" not in err
    code, out, _ = cli("check", str(gptq), "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--dtype", "float16",
                       "--attn", "sdpa", "--quantize", "4bit", "--format", "json")
    failures = {f["code"]: f for f in json.loads(out)["failures"]}
    assert code == 1 and "already quantized" in failures["QUANT009"]["message"]


def test_a_bitsandbytes_checkpoint_on_a_cpu_box_without_bitsandbytes(tiny_llama: Path, tmp_path: Path) -> None:
    """A 4-bit bitsandbytes checkpoint (the usual `-bnb-4bit` upload) needs bitsandbytes whatever is passed."""
    bnb = _quantized_copy(tiny_llama, tmp_path / "bnb",
                          _dict(BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_use_double_quant=True)))
    rec = make_plan(resolve_model(str(bnb)), load_environment(ENVS / "cpu_only.json"))
    assert not rec.ok
    assert any(r.code == "QUANT009" and "bitsandbytes" in r.message for r in rec.rejected)
    assert "quantized bitsandbytes 4-bit" in resolve_model(str(bnb)).stored


def test_a_saved_bitsandbytes_checkpoint_plans_and_loads_as_4bit(tmp_path: Path, cli: Any) -> None:
    """Real bitsandbytes (its CPU backend, 0.48+): a tiny Llama quantized to NF4 and saved. The plan's weight
    figure matches the checkpoint's tensors, and the smoke load finds the projections as Linear4bit."""
    pytest.importorskip("bitsandbytes")
    import torch
    from safetensors import safe_open

    config = transformers.LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                                      num_key_value_heads=4, vocab_size=1000)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "plain")
    quantized = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "plain", device_map="cpu",
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_compute_dtype=torch.bfloat16))
    quantized.save_pretrained(tmp_path / "bnb4")
    with safe_open(str(tmp_path / "bnb4" / "model.safetensors"), "pt") as f:
        stored = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())  # noqa: SIM118

    code, out, _ = cli("recommend", str(tmp_path / "bnb4"), "--cpu", "--format", "json")
    plan = json.loads(out)
    assert code == 0 and plan["model"]["checkpoint_quantization"]["label"] == "bitsandbytes 4-bit nf4"
    assert "quantization_config" not in plan["from_pretrained"]
    assert plan["memory"]["weights_bytes"] == pytest.approx(stored, rel=0.02)
    code, out, _ = cli("smoke", str(tmp_path / "bnb4"), "--cpu", "--format", "json")
    attempt = json.loads(out)["attempts"][0]
    assert code == 0 and attempt["ok"] and attempt["quantization"]["quantized_modules"] == {"Linear4bit": 28}
