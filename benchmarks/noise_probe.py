"""Is run-to-run noise between processes a matter of CPU placement? One configuration, several processes each way.

Usage: python benchmarks/noise_probe.py MODEL_DIR OUT.json [--processes 4]
Runs the bench worker for SDPA bf16, batch-1 decode (32-token prompt, 64 new tokens), alternately unpinned and
pinned to two CPUs on the GPU's NUMA node, and prints the decode tokens/s of every process and each arm's spread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.isolation.child import run_child  # noqa: E402
from advisor.probe.nvml import gpu_local_cpus  # noqa: E402
from advisor.prove.bench import WORKLOADS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    local = gpu_local_cpus(0)
    arms = {"unpinned": None, "pinned": local[-2:] if local else None}
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(args.processes):
        for arm, cpus in arms.items():
            r = run_child("advisor.prove.bench_worker", {
                "path": str(args.model), "auto_class": "AutoModelForCausalLM", "generative": True, "repeats": 5,
                "from_pretrained": {"dtype": "bfloat16", "attn_implementation": "sdpa", "device_map": "cuda:0"},
                "cpus": cpus, "workloads": {"decode": WORKLOADS["decode"].model_dump()},
            }, 300)
            value = (r.get("workloads") or {}).get("decode", {}).get("decode_tokens_per_second")
            results[arm].append(value or 0.0)
            print(arm, cpus, value, r.get("error"), flush=True)
    summary = {arm: {"decode_tokens_per_second": v, "spread": (max(v) - min(v)) / max(v) if max(v) else None}
               for arm, v in results.items()}
    report = {"gpu_local_cpus": local, "cpu_count": os.cpu_count(), "arms": summary}
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
