"""Wall time of `advisor doctor` (no model) against `python -m torch.utils.collect_env`, cold processes.

Usage: python benchmarks/advisor_cost.py [--repeats 3] [--json OUT]
Each command runs in a fresh interpreter; the median of the repeats is reported with the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "advisor doctor": [sys.executable, "-m", "advisor", "doctor", "--format", "json"],
    "advisor recommend (shipped Llama-3-8B)": [sys.executable, "-m", "advisor", "recommend", "meta-llama/Meta-Llama-3-8B", "--format", "json"],
    "torch.utils.collect_env": [sys.executable, "-m", "torch.utils.collect_env"],
}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {name: [timed(cmd) for _ in range(args.repeats)] for name, cmd in COMMANDS.items()}
    medians = {name: statistics.median(times) for name, times in results.items()}
    base = medians["torch.utils.collect_env"]
    for name, median in medians.items():
        print(f"{name:<42} median {median:6.2f} s  ratio to collect_env {median / base:5.2f}  runs {results[name]}")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "median_s": medians,
                                         "ratio_to_collect_env": {k: v / base for k, v in medians.items()}}, indent=1))


if __name__ == "__main__":
    main()
