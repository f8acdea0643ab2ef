"""Issue 28, "execute, do not read", for quantizers: QUANT009 and the plan take the target release's own
quantizer verdict (data/quantizer_acceptance.json: each stored release's validate_environment / update_dtype run
under a target's conditions), not requirements read from one release. Hardware and installed packages are
snapshot data; the tables are the committed ones, or a copy with one row changed (the verdict must follow it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import transformers
from transformers import GPTQConfig

from advisor.facts import ComputeCapability
from advisor.knowledge.quantizer_acceptance import QuantizerVerdict, Unknown, quantizer_verdict
from advisor.model.resolve import resolve_model
from advisor.plan.recommend import make_plan
from advisor.plan.options import PlanRequest
from advisor.probe.target import load_environment

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"
TABLE = json.loads((ROOT / "data" / "quantizer_acceptance.json").read_text())
A100 = ComputeCapability.parse("8.0")


def _case(release: str, method: str, device: str, absent: str) -> list[Any]:
    content = TABLE["releases"][release]["content"]
    cases = TABLE["case_sets"][TABLE["executed"][content]["methods"][method]["cases"]]
    line = next(c for c in cases if c[:2] == [device, absent])
    return [*line[:3], TABLE["messages"][line[3]] if line[3] is not None else None, *line[4:]]


def test_every_stored_release_is_covered_and_cites_its_quantizer() -> None:
    assert len(TABLE["releases"]) == 48
    for release, entry in TABLE["releases"].items():
        executed = TABLE["executed"][entry["content"]]
        assert "error" not in executed, release
        if executed.get("no_quantizers"):
            assert release in ("4.36.2", "4.37.2")
            continue
        for method, block in executed["methods"].items():
            assert block["quantizer"] is None or block["quantizer"].startswith("transformers/quantizers/"), method


def test_gptq_backend_differs_by_release() -> None:
    """4.57.6 loads GPTQ with auto-gptq alone (gptqmodel absent); 5.25.0 refuses it and names gptqmodel: the
    table's old single reading (gptqmodel >= 1.4.3 for every release) was wrong for 4.x."""
    assert _case("4.57.6", "gptq", "8.0", "gptqmodel")[2] == "accepted"
    refused = _case("5.25.0", "gptq", "8.0", "gptqmodel")
    assert refused[2] == "refused" and "gptqmodel" in refused[3]
    old = quantizer_verdict("gptq", "4.57.6", on_gpu=True, cc=A100, installed_packages={"optimum", "auto-gptq"})
    new = quantizer_verdict("gptq", "5.25.0", on_gpu=True, cc=A100, installed_packages={"optimum", "auto-gptq"})
    assert isinstance(old, QuantizerVerdict) and old.case.verdict == "accepted"
    assert isinstance(new, QuantizerVerdict) and new.case.verdict == "refused"
    assert new.installs_that_load() == [("gptqmodel",)]
    nothing = quantizer_verdict("gptq", "4.57.6", on_gpu=True, cc=A100, installed_packages=set())
    assert isinstance(nothing, QuantizerVerdict) and set(nothing.installs_that_load()) == {
        ("auto-gptq", "optimum"), ("gptqmodel", "optimum")}


def test_a_gpu_between_executed_capabilities_takes_the_one_below() -> None:
    """An RTX 4090 (8.9) and an L40S run FP8; an A10 (8.6) dequantizes like the A100 (8.0), in 5.25.0."""
    packages = {"accelerate", "kernels"}
    at = {cc: quantizer_verdict("fp8", "5.25.0", on_gpu=True, cc=ComputeCapability.parse(cc),
                                installed_packages=packages) for cc in ("8.6", "8.9", "12.1")}
    assert {cc: v.case.verdict for cc, v in at.items() if isinstance(v, QuantizerVerdict)} == {
        "8.6": "dequantizes", "8.9": "accepted", "12.1": "accepted"}


def test_a_release_newer_than_the_table_is_unknown_unless_installed() -> None:
    found = quantizer_verdict("fp8", "99.1.0", on_gpu=True, cc=A100, installed_packages={"accelerate"})
    assert isinstance(found, Unknown) and "unknown for transformers 99.1.0" in found.why


def _with(env: Any, transformers_version: str, **libraries: str) -> Any:
    base = env.libraries["accelerate"]
    libs = {**env.libraries, "transformers": env.libraries["transformers"].model_copy(update={"version": transformers_version})}
    for name, version in libraries.items():
        libs[name] = base.model_copy(update={"distribution": name, "import_name": name.replace("-", "_"), "version": version})
    return env.model_copy(update={"libraries": libs})


@pytest.fixture(scope="module")
def gptq_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gptq")
    config = transformers.LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                                      num_attention_heads=16, num_key_value_heads=4, vocab_size=32000)
    config.architectures = ["LlamaForCausalLM"]
    config.quantization_config = {k: v for k, v in GPTQConfig(bits=4, group_size=128).to_dict().items()
                                  if k in ("quant_method", "bits", "group_size", "desc_act", "sym")}
    config.save_pretrained(folder)
    return folder


def test_quant009_takes_the_target_releases_gptq_backend(gptq_folder: Path) -> None:
    """The same A100 with optimum and auto-gptq: transformers 4.57.6 plans it, 5.25.0 refuses with its own error
    and 'pip install gptqmodel' as the fix."""
    a100 = load_environment(ENVS / "a100_80gb_fa2_bnb.json")
    request = PlanRequest(dtype="float16", attn="sdpa")
    old = make_plan(resolve_model(str(gptq_folder)), _with(a100, "4.57.6", optimum="1.25.0", **{"auto-gptq": "0.7.1"}),
                    request=request)
    assert old.ok and not any(r.code == "QUANT009" for r in old.rejected)
    new = make_plan(resolve_model(str(gptq_folder)), _with(a100, "5.25.0", optimum="1.25.0", **{"auto-gptq": "0.7.1"}),
                    request=request)
    rejection = next(r for r in new.rejected if r.code == "QUANT009")
    assert "transformers 5.25.0 refuses it" in rejection.message and "quantizer_gptq.py" in rejection.message
    assert rejection.fix == "pip install gptqmodel"


def _data_copy(tmp_path: Path, edit: Any) -> Path:
    """data/ as links, with quantizer_acceptance.json a copy changed by `edit`."""
    copy = tmp_path / "data"
    copy.mkdir()
    for entry in (ROOT / "data").iterdir():
        if entry.name != "quantizer_acceptance.json":
            (copy / entry.name).symlink_to(entry)
    table = json.loads((ROOT / "data" / "quantizer_acceptance.json").read_text())
    edit(table)
    (copy / "quantizer_acceptance.json").write_text(json.dumps(table))
    return copy


@pytest.fixture
def fp8_folder(tmp_path: Path) -> Path:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024,
              "intermediate_size": 2816, "num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 4,
              "vocab_size": 32000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
              "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic",
                                      "weight_block_size": [128, 128]}}
    folder = tmp_path / "fp8"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_changed_row_changes_the_verdict(cli: Any, fp8_folder: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The A100 plan of an FP8 checkpoint follows the executed row for 5.25.0 at 8.0: as committed it
    dequantizes (a plan at the bf16 size, QUANT009 warns); with that row made 'refused' the plan is rejected."""
    args = ("check", str(fp8_folder), "--gpu", "A100-80GB", "--dtype", "bfloat16", "--attn", "sdpa",
            "--assume", "transformers==5.25.0", "--format", "json")
    code, out, _ = cli(*args)
    warned = [f for f in json.loads(out)["warnings"] if f["code"] == "QUANT009"]
    assert code == 0 and warned and "dequantizes it to bf16" in warned[0]["message"]

    def refuse(table: dict[str, Any]) -> None:
        content = table["releases"]["5.25.0"]["content"]
        for case in table["case_sets"][table["executed"][content]["methods"]["fp8"]["cases"]]:
            if case[0] == "8.0":
                table["messages"].append("ValueError: edited row")
                case[2:5] = ["refused", len(table["messages"]) - 1, "transformers/quantizers/quantizer_finegrained_fp8.py:1"]

    monkeypatch.setenv("ADVISOR_DATA_DIR", str(_data_copy(tmp_path, refuse)))
    code, out, _ = cli(*args)
    failed = [f for f in json.loads(out)["failures"] if f["code"] == "QUANT009"]
    assert code == 1 and failed and "ValueError: edited row" in failed[0]["message"]


def test_the_fp8_row_agrees_with_the_real_cpu_load() -> None:
    """scripts/check_fp8_dequant.py loaded a hand-written block-FP8 tiny Llama on this CPU with 5.25.0: it
    dequantized with the warning the executed row records."""
    ran = json.loads((ROOT / "docs" / "knowledge" / "fp8-dequant-cpu.json").read_text())["result"]
    row = _case("5.25.0", "fp8", "cpu", "-")
    assert ran["loaded"] is True and ran["weight_dtype"] == "bfloat16" and row[2] == "dequantizes"
    assert row[3] in ran["warnings"]


@pytest.mark.skipif(os.environ.get("ADVISOR_DATA_DIR") is not None, reason="needs the committed tables")
def test_awq_forces_float16_on_a_gpu() -> None:
    """update_dtype's result, executed: AWQ loads a requested bfloat16 as float16 on a GPU, GPTQ keeps it."""
    assert _case("5.25.0", "awq", "8.0", "autoawq")[5] == "float16"
    assert _case("5.25.0", "gptq", "8.0", "auto-gptq")[5] == "bfloat16"


def test_the_mxfp4_row_agrees_with_the_real_cpu_load() -> None:
    """scripts/check_mxfp4_dequant.py loaded a hand-written MXFP4 tiny gpt-oss on this CPU without triton
    (5.25.0): bf16 experts equal to the hand-decoded weights, with the warning the executed row records."""
    ran = json.loads((ROOT / "docs" / "knowledge" / "mxfp4-dequant-cpu.json").read_text())["result"]
    assert ran["loaded"] is True and ran["triton"] is False and ran["experts_dtype"] == "bfloat16"
    assert ran["experts_equal_hand_decoded"] is True and ran["max_abs_diff_vs_decoded"] == 0.0
    row = _case("5.25.0", "mxfp4", "cpu", "triton")
    assert row[2] == "dequantizes" and row[3] in ran["warnings"]


def test_an_mxfp4_checkpoint_without_triton_is_a_plan_at_the_bf16_size(tmp_path: Path) -> None:
    """An A100 with accelerate and kernels but no triton: 5.25.0 dequantizes gpt-oss's experts (executed), so the
    plan is a warning and weighs them in bf16, not a rejection; with triton the weights are the 4-bit figure."""
    config = transformers.GptOssConfig(hidden_size=512, intermediate_size=512, num_hidden_layers=4,
                                       num_attention_heads=8, num_key_value_heads=2, head_dim=64, vocab_size=4096,
                                       num_local_experts=8, num_experts_per_tok=2)
    config.architectures = ["GptOssForCausalLM"]
    config.quantization_config = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    config.save_pretrained(tmp_path)
    a100 = _with(load_environment(ENVS / "a100_80gb_fa2_bnb.json"), "5.25.0", kernels="0.19.1")
    request = PlanRequest(dtype="bfloat16", attn="eager")  # gpt-oss has no SDPA
    plain = make_plan(resolve_model(str(tmp_path)), a100, request=request)
    assert plain.ok and plain.chosen is not None
    warned = [f for f in plain.chosen.findings if f.code == "QUANT009"]
    assert warned and "dequantizes it to bf16" in warned[0].message and "triton" in warned[0].message
    quantized = make_plan(resolve_model(str(tmp_path)), _with(a100, "5.25.0", triton="3.5.0"), request=request)
    assert quantized.ok and quantized.memory is not None and plain.memory is not None
    assert not any(f.code == "QUANT009" and "dequantiz" in f.message for f in quantized.chosen.findings)
    assert plain.memory.weights_bytes > 2.5 * quantized.memory.weights_bytes
