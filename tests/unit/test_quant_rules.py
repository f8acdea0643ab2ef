"""QUANT007, the MEM001 fix, the quantization-methods table, doctor's rows and the after-load proof (issue 17).

The facts cited: transformers 5.24.0 `integrations/bitsandbytes.py` line 189 replaces only
`type(module) is nn.Linear` (or Conv1D); `quantizers/quantizer_torchao.py` line 133, `integrations/hqq.py` line 54
and `integrations/quanto.py` line 91 take any `isinstance(module, nn.Linear)`; `integrations/finegrained_fp8.py`
line 962 turns modules named `.experts` into `FP8Experts`; `quantizers/quantizer_finegrained_fp8.py` lines 48-54
want compute capability >= 8.9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from advisor.knowledge import data_dir
from advisor.knowledge.quant_methods import load_methods
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment
from advisor.prove.quant_proof import count_quantized, not_applied
from advisor.rules.method_readiness import doctor_rows, fixes_for

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
TF_ROOT = Path(transformers.__file__).parent


def _line(relative: str) -> str:
    path, _, number = relative.partition(":")
    first = number.split("-")[0].split(",")[0]
    return (TF_ROOT / path).read_text().splitlines()[int(first) - 1]


def test_methods_table_cites_real_lines_of_the_installed_transformers() -> None:
    raw = json.loads((data_dir() / "quant_methods.json").read_text())
    if raw["transformers"] != transformers.__version__:
        pytest.skip(f"table cites {raw['transformers']}")
    expected = {
        "bitsandbytes": "type(module) is nn.Linear", "torchao": "isinstance(module, tuple(_QUANTIZABLE))",
        "hqq": "isinstance(module, torch.nn.Linear)", "quanto": "isinstance(module, nn.Linear)",
        "fp8": 'module_name.endswith(".experts")', "fbgemm_fp8": "isinstance(module, nn.Linear)",
        "compressed_tensors": "def get_experts_scheme", "gptq": "def validate_environment",
        "awq": "def validate_environment", "mxfp4": "class Mxfp4GptOssExperts",
    }
    for method in load_methods():
        assert expected[method.key] in _line(method.rule_source), method.key
        assert method.source


def test_check_falcon_8bit_gives_quant007_with_the_figure_and_sourced_fixes(cli: Any) -> None:
    snapshot = ENVS / "a100_80gb_fa2_bnb.json"
    code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "8bit", "--dtype", "bfloat16", "--env", str(snapshot))
    assert code == 1
    release = json.loads(snapshot.read_text())["libraries"]["transformers"]["version"]  # the target's, not ours
    assert ("QUANT007 bitsandbytes would quantize only 0% of this model's weights in transformers "
            f"{release}: the projections are FalconLinear, a subclass of nn.Linear") in out
    assert "12.9 GiB of its weights would stay in bfloat16" in out  # 6.92B parameters x 2 bytes
    assert "quantizers/quantizer_torchao.py:134" in out and "TorchAoConfig" in out
    assert "integrations/hqq.py:54" in out


def test_recommend_mixtral_on_h100_rejects_4bit_with_quant007_and_an_fp8_fix() -> None:
    # the FP8 matmul's Hub kernel is cached on this target (without it: tests/unit/test_fp8_kernel.py)
    rec = make_plan(resolve_model("mistralai/Mixtral-8x7B-v0.1"), load_environment(ENVS / "h100_fp8_kernel_cached.json"))
    assert rec.chosen is not None and rec.chosen.candidate.quantization == "fp8"  # the fix, planned (QUANT008)
    quant = [r for r in rec.rejected if r.code == "QUANT007"]
    assert {r.option for r in quant} == {"8bit", "4bit"}
    four = next(r for r in quant if r.option == "4bit")
    assert "only 3% of this model's weights" in four.message and "the experts are fused 3-D parameters" in four.message
    assert "84.5 GiB of its weights would stay in bfloat16" in four.message
    assert "FineGrainedFP8Config()" in four.fix and "integrations/finegrained_fp8.py:967" in four.fix
    assert "more GPUs" in four.fix
    mem = next(r for r in rec.rejected if r.code == "MEM001" and r.option == "4bit")
    assert "weights 85.1" in mem.message  # the unquantized experts, counted
    assert "quantize (8-bit or 4-bit)" not in mem.fix


def test_fp8_is_not_offered_below_compute_capability_8_9() -> None:
    env = load_environment(ENVS / "a100_80gb_fa2_bnb.json")
    rec = make_plan(resolve_model("mistralai/Mixtral-8x7B-v0.1"), env, PlanRequest(quantize="4bit"))
    fix = next(r.fix for r in rec.rejected if r.code == "QUANT007")
    assert "FineGrainedFP8Config" not in fix and "compressed-tensors" in fix


def test_a_4bit_candidate_never_gets_quantize_as_its_memory_fix() -> None:
    rec = make_plan(resolve_model("meta-llama/Llama-2-70b-hf"), load_environment(ENVS / "t4_bnb_fa2.json"))
    fixes = {r.option: r.fix for r in rec.rejected if r.code == "MEM001"}
    assert "4bit" in fixes and "quantize (8-bit or 4-bit)" not in fixes["4bit"]
    assert "4-bit" in fixes["8bit"] and "quantize (8-bit or 4-bit)" not in fixes["8bit"]
    assert not any(r.code == "QUANT007" for r in rec.rejected)  # llama: bitsandbytes replaces almost all


def test_transformers_4_targets_get_no_quant007(cli: Any) -> None:
    """4.57.6 `integrations/bitsandbytes.py` line 167 took any nn.Linear subclass: the table's 4.57.6 row says so."""
    _code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "8bit", "--dtype", "bfloat16",
                        "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--assume", "transformers==4.57.6")
    assert "Configuration:" in out
    assert "QUANT007" not in out


def test_quant007_reads_the_assumed_release_and_cites_its_line(cli: Any) -> None:
    """5.17.0 (the H100 box's release) has the exact-type test at integrations/bitsandbytes.py:189 too."""
    code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "8bit", "--dtype", "bfloat16",
                       "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--assume", "transformers==5.17.0",
                       "--format", "json")
    assert code == 1
    finding = next(f for f in json.loads(out)["failures"] if f["code"] == "QUANT007")
    assert "only 0% of this model's weights in transformers 5.17.0" in finding["message"]
    assert "integrations/bitsandbytes.py:189: `if isinstance(module, Conv1D) or type(module) is nn.Linear:`" in \
        finding["detected"]


def test_the_weight_figure_follows_the_target_release() -> None:
    """falcon 8-bit: all weights stay bf16 under 5.24 (FalconLinear skipped), mostly int8 under 4.57.6."""
    from advisor.candidate import Candidate
    from advisor.knowledge import load_knowledge
    from advisor.plan.recommend import evaluate, make_context
    from advisor.probe.target import TargetSpec, resolve_target

    model = resolve_model("tiiuae/falcon-7b")
    c = Candidate(attn="sdpa", dtype="bfloat16", quantization="8bit")
    weights = {}
    for release in ("4.57.6", transformers.__version__):
        env = resolve_target(TargetSpec(env_file=ENVS / "a100_80gb_fa2_bnb.json", assume=(f"transformers=={release}",)))
        weights[release] = evaluate(make_context(model, env, load_knowledge()), c, ()).memory.weights_bytes / 2**30
    assert weights[transformers.__version__] > 12.5  # 6.92B x 2 bytes
    assert weights["4.57.6"] < 8.0  # 6.9B x ~1 byte, the embeddings in bf16


def test_an_uncovered_release_is_said(cli: Any) -> None:
    from packaging.version import Version

    from advisor.knowledge.quantizable_share import covered_release, table_releases

    newest = Version(table_releases()[-1])  # the table covers every stored release (issue 17): the next minor
    release = f"{newest.major}.{newest.minor + 1}.0"
    assert covered_release(release) is None
    _code, out, _ = cli("check", "tiiuae/falcon-7b", "--quantize", "8bit", "--dtype", "bfloat16",
                        "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--assume", f"transformers=={release}",
                        "--format", "json")
    finding = next(f for f in json.loads(out)["warnings"] if f["code"] == "QUANT007")
    assert finding["severity"] == "warn"
    stored = table_releases()
    assert (f"unknown for transformers {release} (the table covers {stored[0]} to {stored[-1]}"
            in finding["message"]) and f"{release} is not installed here" in finding["message"]
    assert "scripts/" not in finding["fix"] and f"transformers {release} installed" in finding["fix"]


def test_fixes_skip_methods_missing_a_gpu_and_order_installed_first() -> None:
    env = load_environment(ENVS / "h100_fp8_kernel_cached.json")
    h100 = fixes_for("fused-experts", "mixtral", env, env.gpu_list[0].compute_capability)  # type: ignore[arg-type]
    assert h100[0].startswith("FineGrainedFP8Config()") and "installed here" in h100[0]
    bare = load_environment(ENVS / "h100_fa2_fa3_bnb.json")  # no `kernels`: FP8 is listed with what it needs
    first = fixes_for("fused-experts", "mixtral", bare, bare.gpu_list[0].compute_capability)[0]  # type: ignore[arg-type]
    assert first.startswith("FineGrainedFP8Config()") and "needs kernels>=0.18.2,<0.19.0 (not installed)" in first
    assert not any("MXFP4" in f or "gpt-oss" in f for f in h100)  # mxfp4 is gpt_oss only
    cpu = load_environment(ENVS / "cpu_only.json")
    assert not any(f.startswith("FineGrainedFP8Config") for f in fixes_for("fused-experts", "mixtral", cpu, None))
    assert any("mxfp4" in f for f in fixes_for("fused-experts", "gpt_oss", env, None))


def test_doctor_rows_say_what_each_method_needs_here() -> None:
    t4 = load_environment(ENVS / "t4_bnb_fa2.json")
    rows = {name: (status, value, fix) for name, status, value, fix in doctor_rows(t4, t4.gpu_list[0].compute_capability)}  # type: ignore[arg-type]
    assert set(rows) == {m.key for m in load_methods()}
    assert rows["bitsandbytes"][0] == "ok"
    assert rows["fp8"][0] == "info" and "compute capability 7.5 < 8.9" in rows["fp8"][1]
    assert rows["torchao"][0] == "info" and "torchao>=0.15.0 (not installed)" in rows["torchao"][1]
    assert rows["torchao"][2] == "pip install 'torchao>=0.15.0'"


def test_doctor_report_has_the_quantization_methods_section(cli: Any) -> None:
    _code, out, _ = cli("doctor", "--env", str(ENVS / "h100_fa2_fa3_bnb.json"), "--format", "json")
    report = json.loads(out)
    section = next(s for s in report["sections"] if s["title"] == "Quantization methods")
    assert {i["name"] for i in section["items"]} >= {"torchao", "hqq", "quanto", "gptq", "awq", "fp8", "mxfp4"}


def test_probe_knows_the_quantization_libraries() -> None:
    from advisor.probe.packages import LIBRARIES

    names = {spec.distribution for spec in LIBRARIES}
    required = {d for m in load_methods() for d in m.requires}
    assert required <= names | {"optimum"}
    assert {"torchao", "hqq", "optimum-quanto", "gptqmodel", "compressed-tensors", "fbgemm-gpu", "triton"} <= names


# --- the after-load proof, on real modules -------------------------------------------------------------------


def _tiny(model_type: str, **extra: Any) -> Any:
    config = transformers.AutoConfig.for_model(model_type, vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=4, **extra)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config)


def test_an_unquantized_falcon_counts_none_of_its_linear_weights() -> None:
    count = count_quantized(_tiny("falcon"))
    assert count["quantized_weights"] == 0 and count["linear_weights"] == 9  # 2 x 4 FalconLinear + lm_head
    assert not_applied(count) == (
        "quantization not applied: 0 of 9 linear weights quantized (0% of their parameters; weights "
        f"{count['weight_bytes'] / 2**20:.2f} MiB after load)")


def test_fused_experts_count_as_linear_weights() -> None:
    count = count_quantized(_tiny("mixtral", intermediate_size=64, num_key_value_heads=2, num_local_experts=4))
    assert count["linear_weights"] == 2 * 4 + 1 + 2 * 2  # attention, lm_head, gate_up_proj + down_proj per layer


def test_int8_weights_count_as_quantized() -> None:
    """A real module holding an int8 weight, as a quantized load leaves it: counted quantized, by logical size."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Linear(8, 4))
    model[0].weight = torch.nn.Parameter(torch.zeros(8, 16, dtype=torch.int8), requires_grad=False)
    count = count_quantized(model)
    assert (count["quantized_weights"], count["linear_weights"]) == (1, 2)
    assert count["quantized_share"] == pytest.approx(128 / (128 + 32))
    assert not_applied(count) is None


def test_smoke_worker_fails_a_quantized_attempt_that_quantized_nothing() -> None:
    from advisor.prove.smoke_worker import CheckFailed, _check_quantized

    result: dict[str, Any] = {}
    with pytest.raises(CheckFailed, match=r"^quantization not applied: 0 of 9 linear weights quantized"):
        _check_quantized(_tiny("falcon"), {"quantization_config": {"load_in_8bit": True}}, result, "cpu", torch)
    assert result["quantization"]["linear_weights"] == 9
    untouched: dict[str, Any] = {}
    _check_quantized(_tiny("falcon"), {"dtype": "float32"}, untouched, "cpu", torch)  # not asked: no check
    assert untouched == {}


bnb = pytest.importorskip  # bitsandbytes is not a test dependency; where installed, prove it on the real thing


@pytest.mark.parametrize("model_type", ["falcon", "llama"])
def test_real_bitsandbytes_load_on_cpu(model_type: str, tmp_path: Path) -> None:
    bnb("bitsandbytes")
    from transformers import BitsAndBytesConfig

    _tiny(model_type).save_pretrained(tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=BitsAndBytesConfig(load_in_8bit=True), dtype=torch.bfloat16, device_map="cpu")
    count = count_quantized(model)
    assert (not_applied(count) is None) == (model_type == "llama")
