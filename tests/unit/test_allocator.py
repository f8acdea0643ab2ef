"""The caching-allocator replay (issue 13) against its rules and against the H100: the bytes
`torch.cuda.memory_allocated()` reported after building five models on the GPU (committed in
docs/benchmarks/memory/h100-memory-baseline.json by benchmarks/h100_memory_baseline.py) are block sizes, 1-4%
above the tensors' bytes for the small ones; replaying the same allocations must give them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.estimate.allocator import CachingAllocator, round_size, segment_size

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def test_sizes_follow_the_allocator_rules() -> None:
    assert round_size(1) == 512 and round_size(513) == 1024 and round_size(MiB) == MiB
    assert segment_size(MiB) == 2 * MiB  # small pool
    assert segment_size(MiB + 512) == 20 * MiB  # large pool, under 10 MiB
    assert segment_size(11 * MiB + 1) == 12 * MiB  # rounded up to 2 MiB


def test_a_large_block_is_not_split_when_at_most_1_mib_would_remain() -> None:
    a = CachingAllocator()
    size = 1152 * 1024  # 1.125 MiB: 17 fit a 20 MiB segment with 0.875 MiB to spare
    handles = [a.malloc(size) for _ in range(17)]
    assert a.reserved == 20 * MiB
    assert a.allocated == 16 * size + (20 * MiB - 16 * size)  # the 17th takes the whole rest of the segment
    for handle in handles:
        a.free(handle)
    assert a.allocated == 0
    a.malloc(20 * MiB)  # the freed blocks merged back into one segment-sized block
    assert a.reserved == 20 * MiB


def test_small_requests_share_a_2_mib_segment_to_the_last_512_bytes() -> None:
    a = CachingAllocator()
    first = a.malloc(100)  # rounded to 512
    a.malloc(MiB)
    a.malloc(MiB - 1024)  # leaves exactly 512 bytes, still split off
    a.malloc(300)  # takes them
    assert a.allocated == 2 * MiB and a.reserved == 2 * MiB
    a.free(first)
    a.malloc(200)  # reuses the freed block instead of a new segment
    assert a.reserved == 2 * MiB


def test_replaying_the_weights_gives_what_the_h100_reported() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from advisor.estimate import simulate as sim

    measured = json.loads((ROOT / "docs/benchmarks/memory/h100-memory-baseline.json").read_text())["models"]
    rows = {}
    for name in ("h100-memory-followup.json", "h100-memory-architectures.json"):
        for row in json.loads((ROOT / "docs/benchmarks/memory" / name).read_text())["rows"]:
            rows.setdefault(row["name"], row)
    checked = 0
    for model in measured:
        row = rows[model["name"]]
        config = {**row["config"], "architectures": [row["architecture"]]}
        built = sim._build(config, row["architecture"], None, torch.bfloat16, "sdpa")
        a = CachingAllocator()
        a.malloc(32 * MiB)  # the cuBLAS workspace the run allocated first (sm90: 32 MiB) ...
        if model["start_bytes"] > 32 * MiB:
            a.malloc(model["start_bytes"] - 32 * MiB)  # ... and what the previous model left (small blocks)
        sizes = sim._weights(built, "none")
        for size in sizes:
            a.malloc(size)
        tensors = model["start_bytes"] + sum(sizes)
        assert abs(a.allocated - model["after_build_bytes"]) <= 0.0005 * model["after_build_bytes"], model["name"]
        checked += model["after_build_bytes"] - tensors > 0.002 * tensors  # rounding the replay had to explain
    assert checked >= 4  # BART, T5, BERT and GPT-2 sit 2-4% above their tensor bytes
