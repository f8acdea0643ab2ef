"""Predicted against measured peak memory, from committed benchmark JSON and the current estimator.

Usage: python benchmarks/memory_table.py docs/benchmarks/llama-3.2-1b-*.json
The measured peaks are torch.cuda.max_memory_allocated() from the H100 run; the predictions are recomputed with
advisor.memory as it is now, so a change to the estimator shows up here without another GPU run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.memory import estimate_memory  # noqa: E402
from advisor.model import resolve_model  # noqa: E402
from advisor.targets import load_environment  # noqa: E402

GPU = load_environment(Path(__file__).resolve().parents[1] / "docs" / "examples" / "h100-probe.json").gpu_list


def main(paths: list[str]) -> None:
    model = resolve_model("meta-llama/Llama-3.2-1B")
    print("| workload | configuration | measured GiB | predicted GiB | error |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for path in paths:
        report = json.loads(Path(path).read_text())
        w = report["workload"]
        for row in report["rows"]:
            if not row["ok"] or row["baseline"]:
                continue
            fp = row["from_pretrained"]
            qc = fp.get("quantization_config") or {}
            quant = "8bit" if qc.get("load_in_8bit") else "4bit" if qc.get("load_in_4bit") else "none"
            est = estimate_memory(model, dtype=fp["dtype"], quantization=quant, attn=fp["attn_implementation"],
                                  batch=w["batch"], seq_len=w["prompt"] + w["new_tokens"], gpus=GPU[:1])
            measured, predicted = row["peak_memory_bytes"], est.peak_allocated_bytes
            error = (predicted - measured) / measured
            worst = max(worst, abs(error))
            print(f"| {w['name']} | {row['label']} | {measured / 2**30:.2f} | {predicted / 2**30:.2f} | {100 * error:+.1f}% |")
    print(f"\nLargest absolute error: {100 * worst:.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
