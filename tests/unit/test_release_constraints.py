"""Issue 11: facts read from the transformers releases themselves, and the rules that use them.

Each test of a "What was found" item names its primary source: a line of a transformers release (cited by the
generated data/release_constraints.json), the flash-attention / onnxruntime source, or a run recorded here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge import load_knowledge
from advisor.knowledge.releases import load_release_constraints

ROOT = Path(__file__).resolve().parents[2]
LLAMA = "meta-llama/Llama-3.2-1B"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_release_constraints", ROOT / "scripts" / "generate_release_constraints.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _codes(findings: list[dict[str, Any]]) -> set[str]:
    return {f["code"] for f in findings}


def _check(cli: Any, *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("check", *argv, "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


# -- the generated file -----------------------------------------------------------------------------------


def test_every_value_cites_release_file_and_line() -> None:
    rc = load_release_constraints()
    history = json.loads((ROOT / "data" / "attention_history.json").read_text())
    assert rc.releases == history["releases"]  # the same 47 releases, 4.36.2 .. 5.24.0
    for name, runs in rc.facts.items():
        for run in runs:
            assert run.release == run.first and run.release in rc.releases, name
            assert run.file.endswith(".py") or run.file == f"transformers-{run.release}.dist-info/METADATA", name
            if run.value not in (None, False):
                assert isinstance(run.line, int) and run.line > 0, (name, run.first)


def test_generator_reads_the_installed_release_like_the_stored_one(tmp_path: Path) -> None:
    """Run every extractor on the installed transformers' own files (zipped like a wheel): each value must equal the
    stored value for that release, and each cited line must be in that file."""
    transformers = pytest.importorskip("transformers")
    gen = _generator()
    rc = load_release_constraints()
    if rc.stored_release(transformers.__version__) != transformers.__version__:
        pytest.skip(f"transformers {transformers.__version__} is not a stored release")
    package = Path(transformers.__file__).parent
    wheel = tmp_path / "transformers.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in package.rglob("*.py"):
            zf.write(path, "transformers/" + path.relative_to(package).as_posix())
        for path in package.parent.glob(f"transformers-{transformers.__version__}.dist-info/METADATA"):
            zf.write(path, path.relative_to(package.parent).as_posix())  # kernels_required reads the wheel's METADATA
    release = gen.Release(transformers.__version__, wheel)
    for name, extract in gen.EXTRACTORS.items():
        found = extract(release)
        stored = rc.at(name, transformers.__version__)
        assert stored is not None and found["value"] == stored.value, name
        if found["line"] is not None:
            where = package.parent if found["file"].endswith("/METADATA") else package
            assert 0 < found["line"] <= len((where / found["file"]).read_text().splitlines()), name


def test_library_rows_are_generated_not_typed() -> None:
    """libraries.json keeps only rows transformers does not state; the minimums come from the releases."""
    k = load_knowledge()
    typed = {row.code for row in k.libraries.rows}
    assert not typed & {"fa2-min-v5", "bnb-min-v5", "accelerate-min-v5", "kernels-window-5.23", "load-in-kwargs-removed"}
    rows = k.constraints_for("flash-attn", {"transformers": "5.0.0"})
    assert [r.specifier for r in rows] == [">=2.1.0"]  # 5.0-5.3 still accepted 2.1.0 on CUDA
    assert rows[0].source.startswith("transformers 4.36.2 utils/import_utils.py:")
    assert [r.specifier for r in k.constraints_for("flash-attn", {"transformers": "5.24.0"})] == [">=2.3.3"]
    assert [r.specifier for r in k.constraints_for("kernels", {"transformers": "5.24.0"})] == [">=0.18.2,<0.19.0"]
    assert [r.specifier for r in k.constraints_for("bitsandbytes", {"transformers": "5.24.0"})] == [">=0.46.1"]
    assert [r.specifier for r in k.constraints_for("accelerate", {"transformers": "4.57.1"})] == [">=0.26.0"]


def test_hand_rows_record_their_source_and_range() -> None:
    k = load_knowledge()
    for row in [*k.libraries.rows, *k.attention.rows]:
        assert row.covers and len(row.source) > 20, row
    # SDPA's per-backend limits are now read from each torch release's wheel (data/sdpa_backends.json, issue 11)
    sdpa = next(r for r in k.attention.rows if r.impl == "sdpa")
    assert "data/sdpa_backends.json" in sdpa.source
    assert not sdpa.verified  # issue 28: read in the wheels, not run (no CUDA here), so it says so


# -- "What was found" -------------------------------------------------------------------------------------


def test_fa3_gate_is_cc8_in_5_24_and_cc9_before_5_4(cli: Any) -> None:
    """transformers 5.24 modeling_flash_attention_utils.py FLASH_ATTENTION_COMPATIBILITY_MATRIX[3]
    cuda_min_major_version = 8; 4.53-5.3 _check_and_enable_flash_attn_3 / _flash_attn_3_can_dispatch: major < 9."""
    rc = load_release_constraints()
    assert rc.at("flash_cc_gates", "5.24.0").value["flash_attention_3"] == 8  # type: ignore[union-attr]
    assert rc.at("flash_cc_gates", "5.0.0").value["flash_attention_3"] == 9  # type: ignore[union-attr]
    base = (LLAMA, "--attn", "flash_attention_3", "--dtype", "bfloat16", "--assume", "flash-attn-3==3.0.0")
    for gpu in ("A100-80GB", "RTX-4090"):
        code, result = _check(cli, *base, "--gpu", gpu)
        assert code == 0 and "ATTN005" not in _codes(result["failures"]), gpu
    code, result = _check(cli, *base, "--gpu", "A100-80GB", "--assume", "transformers==5.0.0")
    assert code == 1 and "ATTN005" in _codes(result["failures"])


def test_fa4_is_accepted_from_5_4_0(cli: Any) -> None:
    """transformers 5.4.0 modeling_utils.py AttentionInterface._global_mapping has "flash_attention_4"; 5.3.0 not."""
    rc = load_release_constraints()
    first = rc.first_accepting("flash_attention_4")
    assert first is not None and first.first == "5.4.0"
    base = (LLAMA, "--gpu", "H100", "--attn", "flash_attention_4", "--dtype", "bfloat16", "--assume", "flash-attn-4==4.0.0")
    code, result = _check(cli, *base, "--assume", "transformers==5.3.0")
    assert code == 1 and "ATTN008" in _codes(result["failures"])
    assert any("5.4.0" in f["fix"] for f in result["failures"])
    code, result = _check(cli, *base, "--assume", "transformers==5.4.0")
    assert "ATTN008" not in _codes(result["failures"])


def test_torch_floor_fails_torch_2_5_1_with_5_24(cli: Any) -> None:
    """transformers 5.20-5.24 utils/import_utils.py is_torch_available: torch >= 2.6.0, else torch is disabled."""
    assert load_release_constraints().at("torch_floor", "5.24.0").value == "2.6.0"  # type: ignore[union-attr]
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--assume", "torch==2.5.1")
    assert code == 1 and "TORCH001" in _codes(result["failures"])
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--assume", "torch==2.6.0")
    assert "TORCH001" not in _codes(result["failures"])


def test_flex_attention_needs_cc7_on_gpus(cli: Any) -> None:
    """torch v2.13.0 torch/_inductor/exc.py:152: 'Triton only supports devices of CUDA Capability >= 7.0'."""
    code, result = _check(cli, LLAMA, "--gpu", "P100", "--attn", "flex_attention", "--dtype", "float16")
    assert code == 1 and "ATTN005" in _codes(result["failures"])
    code, result = _check(cli, LLAMA, "--gpu", "T4", "--attn", "flex_attention", "--dtype", "float16")
    assert "ATTN005" not in _codes(result["failures"])


def test_top_level_load_in_8bit_fails_from_5_0(cli: Any, tmp_path: Path) -> None:
    """transformers 5.0.0 PreTrainedModel.from_pretrained no longer pops load_in_8bit (4.57.6 does)."""
    config = tmp_path / "kwargs.json"
    for flag in ("load_in_8bit", "load_in_4bit"):
        config.write_text(json.dumps({flag: True, "attn_implementation": "sdpa"}))
        code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--config", str(config), "--assume", "bitsandbytes==0.48.0")
        failures = [f for f in result["failures"] if f["code"] == "KWARG001"]
        assert code == 1 and failures and "quantization_config=BitsAndBytesConfig" in failures[0]["fix"]
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--config", str(config), "--assume", "bitsandbytes==0.48.0",
                          "--assume", "transformers==4.57.1")
    assert "KWARG001" not in _codes(result["failures"])


def test_dtype_kwarg_before_4_56_raises_as_executed(cli: Any, tmp_path: Path) -> None:
    """Issue 28's audit ("right answer, wrong reason"): dtype= in 4.46.3 raises TypeError, it does not load float32.
    The message follows what scripts/check_dtype_kwarg.py saw each release do."""
    ran = json.loads((Path(__file__).resolve().parents[2] / "docs" / "knowledge" / "dtype-kwarg.json").read_text())
    executed = {r["release"]: r["dtype"] for r in ran["results"] if "dtype" in r}
    assert executed["4.46.3"].startswith("TypeError") and executed["4.56.2"] == "loads in float16"
    config = tmp_path / "kwargs.json"
    config.write_text(json.dumps({"dtype": "float16", "attn_implementation": "sdpa"}))
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--config", str(config), "--assume", "transformers==4.46.3")
    failures = [f for f in result["failures"] if f["code"] == "KWARG001"]
    assert code == 1 and failures and "raises TypeError" in failures[0]["message"]
    assert "float32" not in failures[0]["message"]


def test_hub_kernel_fallbacks_cover_fa2_fa3_fa4(cli: Any) -> None:
    """transformers 5.24 modeling_flash_attention_utils.py FLASH_ATTN_KERNEL_FALLBACK."""
    fallback = load_release_constraints().at("kernel_fallback", "5.24.0").value  # type: ignore[union-attr]
    assert {impl: repos["cuda"] for impl, repos in fallback.items()} == {
        "flash_attention_2": "kernels-community/flash-attn2",
        "flash_attention_3": "kernels-community/vllm-flash-attn3",
        "flash_attention_4": "kernels-community/flash-attn4",
    }
    for impl, repo in (("flash_attention_3", "vllm-flash-attn3"), ("flash_attention_4", "flash-attn4")):
        code, result = _check(cli, LLAMA, "--gpu", "H100", "--attn", impl, "--dtype", "bfloat16",
                              "--assume", "kernels==0.18.2", "--assume", "transformers==5.24.0")
        assert code == 0, result["failures"]
        assert any(f["code"] == "ATTN002" and repo in f["message"] for f in result["warnings"])


@pytest.mark.parametrize("name", ["paged|sdpa", "paged|eager", "kernels-community/flash-attn2"])
def test_names_5_24_accepts_are_accepted(cli: Any, name: str) -> None:
    """transformers 5.24 modeling_utils.py: `paged|` prefix stripped (5.19+ keeps only paged|eager registered),
    integrations/hub_kernels.py is_kernel: ^[^/:]+/[^/:]+(?:@[^/:]+)?(?::[^/:]+)?$."""
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--attn", name, "--dtype", "bfloat16",
                          "--assume", "kernels==0.18.2", "--assume", "transformers==5.24.0")
    assert code == 0, result["failures"]
    code, result = _check(cli, LLAMA, "--gpu", "A100-80GB", "--attn", name, "--dtype", "bfloat16",
                          "--assume", "kernels==0.18.2", "--assume", "transformers==4.46.3")
    assert code == 1 and "ATTN008" in _codes(result["failures"])


def test_unknown_attention_name_is_bad_input(cli: Any) -> None:
    code, _, err = cli("check", LLAMA, "--gpu", "A100-80GB", "--attn", "paged_sdpa_nope")
    assert code == 2 and "unknown attention implementation" in err and len(err.strip().splitlines()) == 1


def test_onnxruntime_1_23_has_no_rocm_provider(cli: Any) -> None:
    """microsoft/onnxruntime v1.23.0 release notes: 'ROCM EP was removed from the source tree'."""
    code, result = _check(cli, LLAMA, "--gpu", "MI300X", "--assume", "onnxruntime==1.23.0")
    assert code == 0  # a warning about the ONNX path, not a reason to refuse the transformers plan
    assert any(f["code"] == "ORT001" and "MIGraphX" in f["message"] for f in result["warnings"])
    _, result = _check(cli, LLAMA, "--gpu", "MI300X", "--assume", "onnxruntime==1.22.0")
    assert "ORT001" not in _codes(result["warnings"])


def test_dtype002_says_v5_keeps_the_checkpoint_dtype(cli: Any) -> None:
    """transformers 5.0.0 from_pretrained sets dtype = "auto" when none is given; 4.x popped torch_dtype=None, so with
    no dtype 4.x loads float32 and DTYPE002 has nothing to warn of. An explicit dtype says nothing of the default
    (issue 31)."""
    _, result = _check(cli, LLAMA, "--cpu")
    message = next(f["message"] for f in result["warnings"] if f["code"] == "DTYPE002")
    assert "keeps the checkpoint's dtype" in message and "(the default)" not in message
    _, result = _check(cli, LLAMA, "--cpu", "--assume", "transformers==4.57.1")
    assert not [f for f in result["warnings"] if f["code"] == "DTYPE002"]
    _, result = _check(cli, LLAMA, "--cpu", "--dtype", "bfloat16", "--assume", "transformers==4.57.1")
    assert "with no dtype" not in next(f["message"] for f in result["warnings"] if f["code"] == "DTYPE002")


def test_attn011_says_right_padding_warns() -> None:
    """transformers generation/utils.py: 'right-padding was detected' is a logger warning, not an error."""
    from advisor.api import check

    result = check(LLAMA, gpu="A100-80GB", attn="flash_attention_2", dtype="bfloat16", batch=8,
                   assume=["flash-attn==2.8.3"])
    infos = [f for f in result.model_dump()["failures"] + result.model_dump()["warnings"]]
    assert not [f for f in infos if f["code"] == "ATTN011"]  # INFO only, never blocks
    from advisor.rules.attention import left_padding

    assert "rejects" not in left_padding.why and "warns" in left_padding.why


def test_gpt2_seq_len_2048_fails(cli: Any) -> None:
    """GPT-2's config.json: n_positions = 1024 (data/models)."""
    code, result = _check(cli, "gpt2", "--cpu", "--seq-len", "2048")
    assert code == 1 and "SEQ001" in _codes(result["failures"])
    assert "1,024" in next(f["message"] for f in result["failures"] if f["code"] == "SEQ001")
    code, result = _check(cli, "gpt2", "--cpu", "--seq-len", "1024")
    assert "SEQ001" not in _codes(result["failures"])


def _config(folder: Path, model_type: str) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": model_type, "architectures": ["XForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 128,
    }))
    return folder


def test_unknown_model_type_exits_1_not_ok_sdpa(cli: Any, tmp_path: Path) -> None:
    code, out, _ = cli("recommend", str(_config(tmp_path / "a", "not_a_real_type")), "--cpu")
    assert code == 1 and "ok: sdpa" not in out
    code, result = _check(cli, str(tmp_path / "a"), "--cpu")
    finding = next(f for f in result["failures"] if f["code"] == "ARCH001")
    assert "custom code" in finding["fix"]


def test_unknown_model_type_fix_names_the_first_release(cli: Any, tmp_path: Path) -> None:
    """data/attention_history.json: minimax_m3_vl first appears in a 5.x release."""
    from advisor.knowledge.model_types import model_type_known

    first = model_type_known("minimax_m3_vl", "4.57.1").first_release
    assert first is not None
    code, result = _check(cli, str(_config(tmp_path / "b", "minimax_m3_vl")), "--cpu", "--assume", "transformers==4.57.1")
    finding = next(f for f in result["failures"] if f["code"] == "ARCH001")
    assert code == 1 and f"transformers>={first}" in finding["fix"]


def test_flex_on_cpu_only_where_shown_to_compile(cli: Any) -> None:
    """data/flex_cpu/torch-2.13.0.json (benchmarks/flex_cpu_compile.py, this repository): a padded generate with
    flex_attention on torch 2.13's Inductor CPU backend raised CppCompileError."""
    record = json.loads((ROOT / "data" / "flex_cpu" / "torch-2.13.0.json").read_text())
    assert record["compiles"] is False and any("CppCompileError" in (r["error"] or "") for r in record["runs"])
    code, result = _check(cli, LLAMA, "--cpu", "--attn", "flex_attention", "--dtype", "float32",
                          "--assume", "torch==2.13.0")
    assert code == 1 and "ATTN014" in _codes(result["failures"])
    code, out, _ = cli("recommend", LLAMA, "--cpu", "--format", "json")
    plan = json.loads(out)
    assert all(option["candidate"]["attn"] != "flex_attention" for option in [plan["chosen"], *plan["alternatives"]])
