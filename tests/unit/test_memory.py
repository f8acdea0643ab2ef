"""The memory estimator against the peaks measured on an H100 (committed under docs/benchmarks) and its kernel rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from advisor.estimate.memory import activation_bytes, estimate_memory, score_bytes_per_element
from advisor.model.resolve import resolve_model
from advisor.probe.target import load_environment
from advisor.prove.bench import BenchReport, repredict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from regret_memory import MODELS, slug_of  # noqa: E402

H100 = load_environment(ROOT / "docs" / "examples" / "h100-probe.json").gpu_list[:1]
MEASURED = sorted((ROOT / "docs" / "benchmarks").glob("*.json"))


def test_there_are_committed_measurements_for_every_benchmark_model() -> None:
    assert {slug_of(p) for p in MEASURED} == set(MODELS)


@pytest.mark.parametrize("path", MEASURED, ids=lambda p: p.stem)
def test_predicted_peak_is_within_ten_percent_of_the_h100_measurement(path: Path) -> None:
    slug = slug_of(path)
    report = BenchReport.model_validate_json(path.read_text())
    model = resolve_model(MODELS[slug])
    if slug.startswith("bert-base"):  # `advisor bench` loaded AutoModel, BertModel: the figure is that class's
        model = model.model_copy(update={"architecture": "BertModel", "generative": False})
    rows = repredict(report, model, H100)
    assert rows, "no measured candidate in the file"
    errors = {row.label: (predicted - row.peak_memory_bytes) / row.peak_memory_bytes
              for row, predicted in rows if row.peak_memory_bytes}
    assert all(abs(e) <= 0.10 for e in errors.values()), errors


def test_score_matrix_only_where_no_fused_kernel_runs() -> None:
    llama = resolve_model("meta-llama/Llama-3.2-1B")  # grouped-query attention, 32 heads over 8 KV heads
    bert = resolve_model("google-bert/bert-base-uncased")  # 12 heads, no GQA
    assert score_bytes_per_element(llama, "bfloat16", "eager", gpu=True) == 10
    assert score_bytes_per_element(llama, "float32", "sdpa", gpu=True) == 10  # enable_gqa -> math kernel
    assert score_bytes_per_element(llama, "bfloat16", "sdpa", gpu=True) == 0
    assert score_bytes_per_element(llama, "float32", "sdpa", gpu=False) == 0
    assert score_bytes_per_element(bert, "float32", "sdpa", gpu=True) == 0  # memory-efficient kernel
    assert score_bytes_per_element(llama, "bfloat16", "flash_attention_2", gpu=True) == 0


def test_a_long_eager_prompt_is_dominated_by_its_score_matrix() -> None:
    llama = resolve_model("meta-llama/Llama-3.2-1B")
    eager = activation_bytes(llama, "bfloat16", "eager", 1, 4096)
    sdpa = activation_bytes(llama, "bfloat16", "sdpa", 1, 4096)
    scores = llama.num_attention_heads * 4096**2 * 10
    assert scores < eager < scores * 1.05
    assert sdpa < scores / 10


def test_prompt_length_drives_activations_and_total_length_the_kv_cache() -> None:
    llama = resolve_model("meta-llama/Llama-3.2-1B")
    whole = estimate_memory(llama, dtype="bfloat16", quantization="none", attn="eager", batch=4, seq_len=2048, gpus=H100)
    short = estimate_memory(llama, dtype="bfloat16", quantization="none", attn="eager", batch=4, seq_len=2048,
                            gpus=H100, prompt_len=128)
    assert short.kv_cache_bytes == whole.kv_cache_bytes
    assert short.activation_bytes < whole.activation_bytes / 50
