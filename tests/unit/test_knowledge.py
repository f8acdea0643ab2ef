"""The tables in data/: valid, sourced, and in step with the installed transformers."""

from __future__ import annotations

import json

import pytest

from advisor.facts import ComputeCapability
from advisor.knowledge import data_dir, load_knowledge
from advisor.knowledge.installed import installed_version
from advisor.knowledge.introspect import read_attention_support
from advisor.model.resolve import resolve_model

REQUIRED_GPUS = ["T4", "V100", "V100-16GB", "A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100", "H200",
                 "RTX-3090", "RTX-4090", "MI300X"]
REQUIRED_MODELS = ["meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf",
                   "mistralai/Mistral-7B-v0.1", "Qwen/Qwen2-7B", "google/gemma-7b", "tiiuae/falcon-7b", "gpt2",
                   "bert-base-uncased", "t5-base", "openai/whisper-small", "facebook/opt-350m",
                   "bigscience/bloom-560m", "distilbert-base-uncased-finetuned-sst-2-english"]


def test_every_row_has_a_source() -> None:
    k = load_knowledge()
    rows = [*k.gpus.rows, *k.capabilities.nvidia, *k.capabilities.amd, *k.attention.rows, *k.libraries.rows, *k.models]
    assert all(len(r.source) >= 8 for r in rows)


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_required_gpus_are_in_the_table(name: str) -> None:
    row = load_knowledge().gpu(name.lower())
    assert row.memory_mib > 10_000


def test_nvml_product_names_map_to_rows() -> None:
    k = load_knowledge()
    assert k.gpu("NVIDIA H100 80GB HBM3").name == "H100"
    assert k.gpu("Tesla T4").name == "T4"


@pytest.mark.parametrize(
    "cc, bf16, fp8, tf32",
    [("7.0", False, False, False), ("7.5", False, False, False), ("8.0", True, False, True),
     ("8.6", True, False, True), ("8.9", True, True, True), ("9.0", True, True, True), ("12.0", True, True, True)],
)
def test_dtype_support_by_compute_capability(cc: str, bf16: bool, fp8: bool, tf32: bool) -> None:
    d = load_knowledge().dtype_support(ComputeCapability.parse(cc))
    assert (d.bf16, d.fp8, d.tf32, d.fp16) == (bf16, fp8, tf32, True)


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_shipped_models_resolve_offline(model: str) -> None:
    spec = resolve_model(model)
    assert spec.source == "shipped" and spec.param_count > 10_000_000 and spec.param_count_method == "meta-device"


def test_well_known_parameter_counts() -> None:
    assert abs(resolve_model("meta-llama/Meta-Llama-3-8B").param_count - 8.03e9) < 0.01e9
    assert abs(resolve_model("gpt2").param_count - 124.4e6) < 0.5e6


def test_schema_versions() -> None:
    for name in ("gpus.json", "capabilities.json", "attention_impls.json", "libraries.json", "model_notes.json",
                 "bitsandbytes.json", "position_kinds.json"):
        assert json.loads((data_dir() / name).read_text())["schema_version"] == 1


@pytest.mark.slow
def test_shipped_attention_table_matches_installed_version() -> None:
    """Drift report: the shipped table for this release must equal what its classes declare."""
    here = installed_version()
    shipped = {t.transformers: t for t in load_knowledge().shipped_attention_tables()}
    if here not in shipped:
        pytest.skip(f"no shipped table for transformers {here}: run scripts/refresh_attention_table.py")
    live = read_attention_support()
    table = {r.model_type: r.model_dump(by_alias=True) for r in shipped[here].architectures}
    # issue 28: where the release's executed acceptance decides a cell, the table holds that verdict instead of the
    # class flag (scripts/matrix_from_acceptance.py), and flash_attention_4 is a stored column
    accepted_path = data_dir() / "acceptance" / f"transformers-{here}.json"
    accepted = json.loads(accepted_path.read_text()) if accepted_path.exists() else None
    drift = []
    for row in live["architectures"]:
        expected = dict(row)
        executed = (accepted or {}).get("types", {}).get(row["model_type"])
        if executed is not None:
            for impl, char in zip(accepted["impls"], executed[1]):  # type: ignore[index]
                if char in "01":
                    expected[impl] = char == "1"
        shown = dict(table.get(row["model_type"]) or {})
        fa4 = shown.pop("flash_attention_4", None)
        expected.pop("flash_attention_4", None)
        if shown != expected or (executed is None and fa4 is not None and fa4 != row["flash_attention_2"]):
            drift.append(row["model_type"])
    assert not drift, f"shipped table differs from transformers {here} for {drift[:10]}"
