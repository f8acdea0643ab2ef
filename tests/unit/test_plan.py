"""The planner against named GPUs and package sets: never pick what cannot run, and say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.knowledge import load_knowledge
from advisor.model.resolve import describe_config, resolve_model
from advisor.model.spec import ModelSpec
from advisor.plan.options import PlanRequest, Recommendation
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"


def plan(model: str | ModelSpec, env: str, **request: Any) -> Recommendation:
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    return make_plan(spec, load_environment(ENVS / f"{env}.json"), PlanRequest(**request))


def rejected(rec: Recommendation, option: str) -> set[str]:
    return {r.code for r in rec.rejected if r.option == option}


def synthetic(model_type: str = "llama", **overrides: Any) -> ModelSpec:
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type, **overrides).to_dict()
    config["architectures"] = [overrides.pop("arch", "LlamaForCausalLM")] if model_type == "llama" else config.get("architectures")
    return describe_config(config, name=f"synthetic-{model_type}", source="config-file")


def test_t4_never_gets_flash_attention_2_or_bf16() -> None:
    rec = plan("meta-llama/Llama-2-7b-hf", "t4_bnb_fa2")
    assert rec.ok and rec.from_pretrained is not None
    assert rec.from_pretrained["attn_implementation"] == "sdpa"
    assert rec.from_pretrained["dtype"] == "float16"
    assert "ATTN005" in rejected(rec, "flash_attention_2")
    assert "DTYPE001" in rejected(rec, "bfloat16")
    fa2 = next(r for r in rec.rejected if r.option == "flash_attention_2" and r.code == "ATTN005")
    assert "7.5" in fa2.message and "8.0" in fa2.message and fa2.fix


def test_t4_7b_fp16_does_not_fit_so_8bit_is_chosen() -> None:
    rec = plan("meta-llama/Llama-2-7b-hf", "t4_bnb_fa2")
    assert rec.from_pretrained["quantization_config"]["load_in_8bit"] is True  # type: ignore[index]
    assert "MEM001" in rejected(rec, "float16")
    assert rec.memory is not None and rec.memory.fits and rec.memory.total_bytes <= rec.memory.budget_bytes


def test_a100_with_flash_attn_picks_fa2_in_bf16() -> None:
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_80gb_fa2_bnb")
    assert rec.from_pretrained == {"dtype": "bfloat16", "attn_implementation": "flash_attention_2", "device_map": "cuda:0"}
    assert [a.candidate.attn for a in rec.alternatives[:1]] == ["sdpa"]


def test_h100_with_fa3_picks_fa3() -> None:
    rec = plan("mistralai/Mistral-7B-v0.1", "h100_fa2_fa3_bnb")
    assert rec.from_pretrained["attn_implementation"] == "flash_attention_3"  # type: ignore[index]


def test_fa3_on_ampere_needs_only_the_package_in_5_24() -> None:
    """transformers 5.24 gates FA3 at compute capability >= 8 (modeling_flash_attention_utils.py,
    cuda_min_major_version; data/release_constraints.json flash_cc_gates), and the hopper/ build compiles SM80:
    on an A100 only the missing flash-attn-3 package refuses it (issue 11)."""
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_80gb_fa2_bnb")
    assert "ATTN002" in rejected(rec, "flash_attention_3")
    assert "ATTN005" not in rejected(rec, "flash_attention_3")


def test_cpu_only_plans_float32_sdpa_without_device_map() -> None:
    rec = plan("openai-community/gpt2", "cpu_only")
    assert rec.from_pretrained == {"dtype": "float32", "attn_implementation": "sdpa"}
    assert "ATTN005" in rejected(rec, "flash_attention_2")


def test_head_dim_512_rejects_flash_attention() -> None:
    model = synthetic(hidden_size=2048, num_attention_heads=4, head_dim=512, num_hidden_layers=2, vocab_size=1000)
    assert model.head_dim == 512
    rec = plan(model, "a100_80gb_fa2_bnb")
    assert "ATTN007" in rejected(rec, "flash_attention_2")
    assert rec.from_pretrained["attn_implementation"] == "sdpa"  # type: ignore[index]


def test_head_dim_not_a_multiple_of_8_is_padded_by_fa2() -> None:
    """Issue 28's audit: flash-attn pads head_dim 100 to 104 (flash_attn_interface.py, FlashAttnFunc.forward; the
    C++ API before v2.7.0), so FA2 is not rejected for it."""
    model = synthetic(hidden_size=800, num_attention_heads=8, num_hidden_layers=2, vocab_size=1000)
    assert model.head_dim == 100
    rec = plan(model, "a100_80gb_fa2_bnb")
    assert "ATTN007" not in rejected(rec, "flash_attention_2")
    assert rec.from_pretrained["attn_implementation"] == "flash_attention_2"  # type: ignore[index]


def test_head_dim_256_is_fine_for_fa2() -> None:
    rec = plan("google/gemma-7b", "a100_80gb_fa2_bnb")
    assert rec.model.head_dim == 256
    assert rec.from_pretrained["attn_implementation"] == "flash_attention_2"  # type: ignore[index]


def test_explicit_head_dim_wins_over_hidden_over_heads() -> None:
    model = resolve_model("google/gemma-7b")
    assert model.hidden_size // model.num_attention_heads == 192 and model.head_dim == 256


def test_too_big_for_one_card_spreads_over_two_with_max_memory() -> None:
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_40gb_x2_bnb", seq_len=4096)
    assert rec.from_pretrained["device_map"] == "cuda:0"  # type: ignore[index]  # 8B bf16 fits one 40 GB card
    rec = plan("meta-llama/Llama-2-70b-hf", "a100_40gb_x2_bnb")
    fp = rec.from_pretrained
    assert fp is not None and fp["device_map"] == "auto" and set(fp["max_memory"]) == {"0", "1"}
    assert fp["quantization_config"]["load_in_8bit"] is True  # bf16 (128 GiB) does not fit 2 x 40 GB
    assert rec.chosen is not None and rec.chosen.candidate.placement == "multi-gpu"
    caps = [int(v.removesuffix("MiB")) for v in fp["max_memory"].values()]
    assert all(30_000 < c < 40_960 for c in caps)


def test_nothing_fits_lists_every_reason() -> None:
    rec = plan("meta-llama/Llama-2-70b-hf", "t4_plain")
    assert not rec.ok and rec.from_pretrained is None
    rules = {r.code for r in rec.rejected}
    assert {"MEM001", "QUANT001", "ATTN005", "DTYPE001"} <= rules


def test_broken_extensions_are_rejected_with_their_error() -> None:
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_broken_extensions")
    fa2 = next(r for r in rec.rejected if r.option == "flash_attention_2" and r.code == "ATTN003")
    assert "undefined symbol" in fa2.message and "ABI" in fa2.message
    assert "QUANT002" in rejected(rec, "4bit")
    assert rec.from_pretrained["attn_implementation"] == "sdpa"  # type: ignore[index]


def test_v100_int8_warns_and_bf16_is_rejected() -> None:
    rec = plan("meta-llama/Llama-2-7b-hf", "v100_bnb", quantize="8bit")
    assert "DTYPE001" in rejected(rec, "bfloat16")
    assert rec.chosen is not None
    assert any(f.code == "QUANT005" for f in rec.chosen.findings)


def test_architecture_without_sdpa_falls_back_to_eager() -> None:
    knowledge = load_knowledge()
    table = knowledge.shipped_attention_tables()[-1]
    no_sdpa = next(r.model_type for r in table.architectures if not r.sdpa and r.model_type in ("ctrl", "transfo-xl", "xlnet", "fsmt", "reformer", "funnel", "layoutlm", "canine", "mpnet", "squeezebert"))
    model = synthetic(no_sdpa)
    rec = plan(model, "a100_80gb_fa2_bnb")
    assert rec.from_pretrained["attn_implementation"] == "eager"  # type: ignore[index]
    assert "ATTN001" in rejected(rec, "sdpa")


def test_old_transformers_gets_torch_dtype_spelling() -> None:
    from advisor.plan.emit import dtype_key

    assert dtype_key("4.46.0") == "torch_dtype" and dtype_key("4.56.0") == "dtype" and dtype_key("5.17.0") == "dtype"


def test_fp16_overflow_model_prefers_fp32_on_t4() -> None:
    rec = plan("google-t5/t5-base", "t4_plain")
    assert rec.from_pretrained["dtype"] == "float32"  # type: ignore[index]
    fp16 = next(a for a in rec.alternatives if a.candidate.dtype == "float16")
    assert any(f.code == "DTYPE003" for f in fp16.findings)


def test_4bit_uses_nf4_and_half_compute() -> None:
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_80gb_fa2_bnb", quantize="4bit")
    qc = rec.from_pretrained["quantization_config"]  # type: ignore[index]
    assert qc["load_in_4bit"] and qc["bnb_4bit_quant_type"] == "nf4" and qc["bnb_4bit_compute_dtype"] == "bfloat16"


def test_python_snippet_is_valid_python() -> None:
    rec = plan("meta-llama/Meta-Llama-3-8B", "a100_40gb_x2_bnb", quantize="4bit")
    assert rec.python is not None
    compile(rec.python, "snippet.py", "exec")
    assert "BitsAndBytesConfig(" in rec.python and "torch.bfloat16" in rec.python


def test_left_padding_advice_for_decoders() -> None:
    assert plan("openai-community/gpt2", "cpu_only").tokenizer == {"padding_side": "left"}
    assert plan("google-bert/bert-base-uncased", "cpu_only").tokenizer == {}


def test_kwargs_load_a_real_tiny_model(tiny_llama: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    rec = plan(str(tiny_llama), "cpu_only")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, **rec.from_pretrained_kwargs())
    assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"
    assert rec.model.param_count == sum(p.numel() for p in model.parameters())


def test_old_transformers_gets_upgrade_advice_from_history() -> None:
    from advisor.probe.target import TargetSpec, resolve_target

    env = resolve_target(TargetSpec(gpus=["A100-80GB"], assume=["transformers==4.45.0", "flash-attn==2.8.3"]))
    rec = make_plan(resolve_model("bert-base-uncased"), env)
    assert rec.from_pretrained is not None and "torch_dtype" in rec.from_pretrained
    fa2 = next(r for r in rec.rejected if r.option == "flash_attention_2" and r.code == "ATTN001")
    assert "upgrade transformers to >= 5.0.0" in fa2.fix
