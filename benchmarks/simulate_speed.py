"""Wall time of one memory simulation (issue 13: a 7B decoder at 4,096 tokens within 3 s on a 2-core CPU).

Usage: python benchmarks/simulate_speed.py [--json FILE] [--repeats 3]
Imports torch and transformers first (the advisor has them loaded by then), then times fresh simulations
(the in-process cache cleared before each) of shipped 7-8B configs: prefill of 4,096 tokens and one decode step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = [
    ("meta-llama/Llama-2-7b-hf", "sdpa", 1, 4096),
    ("meta-llama/Llama-2-7b-hf", "eager", 1, 4096),
    ("mistralai/Mistral-7B-v0.1", "sdpa", 1, 4096),
    ("meta-llama/Meta-Llama-3-8B", "sdpa", 16, 512),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from advisor.estimate import simulate as sim
    from advisor.knowledge import load_knowledge

    knowledge = load_knowledge()
    rows = []
    for hub_id, attn, batch, prompt in CASES:
        config = dict(knowledge.shipped_model(hub_id).config)  # type: ignore[union-attr]
        times = []
        for _ in range(args.repeats):
            sim._simulate_cached.cache_clear()
            start = time.perf_counter()
            result = sim.simulate(config, architecture=config["architectures"][0], dtype="bfloat16", attn=attn,
                                  batch=batch, prompt_len=prompt, seq_len=prompt + 1, padded=batch > 1)
            times.append(time.perf_counter() - start)
        rows.append({"model": hub_id, "attn": attn, "batch": batch, "prompt": prompt,
                     "median_seconds": round(statistics.median(times), 3), "max_seconds": round(max(times), 3),
                     "peak_gib": round(result.peak_bytes / 2**30, 3), "layers_simulated": result.layers_simulated})
        print(json.dumps(rows[-1]), flush=True)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
           "torch": torch.__version__, "transformers": transformers.__version__, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
