#!/usr/bin/env python
"""Per-rank memory plan vs measured RSS under tensor parallel on CPU processes (issue 30).

Why: the per-rank plan (advisor/estimate/per_rank.py: sharded weights / N + replicated parts + KV cache share +
activations) is a prediction; `advisor smoke --cpu --tp N` measures each rank's peak RSS. RSS also holds the
Python runtime, torch, transformers and torch.distributed (gloo) state, which the plan leaves out (on a GPU the
CUDA context stands in its place), so a single model cannot separate plan from runtime. Two Llama-shaped models
of different widths, saved with save_pretrained and smoke-tested the same way, can: the *difference* in each
rank's RSS growth (peak minus RSS after imports) between the two is set by the weights alone and is compared
with the difference in planned bytes. Random weights; nothing is downloaded.

    python benchmarks/tp_cpu_rss.py                     # writes docs/benchmarks/parallel/tp-cpu-rss.json
    python benchmarks/tp_cpu_rss.py --tp 2 -o FILE
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHAPES = {  # hidden, intermediate, layers, heads, KV heads; vocab 32000, untied lm_head (Llama-2's shape family)
    "narrow": (512, 1408, 4, 8, 4),
    "wide": (1024, 2816, 4, 8, 4),
}


def _save(folder: Path, shape: tuple[int, int, int, int, int]) -> None:
    import torch
    import transformers

    hidden, inter, layers, heads, kv = shape
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                                      num_attention_heads=heads, num_key_value_heads=kv, vocab_size=32000,
                                      max_position_embeddings=512, tie_word_embeddings=False)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


def _smoke(folder: Path, tp: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "advisor", "smoke", str(folder), "--cpu", "--tp", str(tp),
                           "--format", "json", "--timeout", "600"], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"smoke failed for {folder.name}: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "benchmarks" / "parallel" / "tp-cpu-rss.json")
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            folder = Path(tmp) / name
            _save(folder, shape)
            report = _smoke(folder, args.tp)
            ranks = report["ranks"]
            rows[name] = {
                "shape": dict(zip(("hidden", "intermediate", "layers", "heads", "kv_heads"), shape)),
                "max_abs_diff": report["attempts"][0]["max_abs_diff"],
                "ranks": [{"rank": r["rank"], "peak_rss_bytes": r["peak_rss_bytes"],
                           "baseline_rss_bytes": r["baseline_rss_bytes"],
                           "growth_bytes": r["peak_rss_bytes"] - r["baseline_rss_bytes"],
                           "planned_bytes": r["planned_bytes"]} for r in ranks],
            }
            print(f"{name}: " + ", ".join(f"rank {r['rank']} growth {r['growth_bytes'] / 2**20:.0f} MiB, planned "
                                          f"{r['planned_bytes'] / 2**20:.0f} MiB" for r in rows[name]["ranks"]),
                  file=sys.stderr)
    narrow, wide = rows["narrow"]["ranks"], rows["wide"]["ranks"]
    marginal = [{"rank": a["rank"], "growth_difference_bytes": b["growth_bytes"] - a["growth_bytes"],
                 "planned_difference_bytes": b["planned_bytes"] - a["planned_bytes"],
                 "ratio": round((b["growth_bytes"] - a["growth_bytes"]) / (b["planned_bytes"] - a["planned_bytes"]), 3)}
                for a, b in zip(narrow, wide)]
    data = {
        "description": ("Per-rank plan vs peak RSS of `advisor smoke --cpu --tp N` on two Llama shapes (random "
                        "weights, float32). growth = peak RSS - RSS after importing torch and transformers; the "
                        "wide-minus-narrow difference isolates what the weights cost, compared with the difference "
                        "in planned bytes (ratio 1.0 = the plan is exact)."),
        "generated_by": "python benchmarks/tp_cpu_rss.py",
        "machine": f"{platform.node() and 'shared CPU box'}: {os.cpu_count()} CPU cores, {platform.machine()}, "
                   f"python {platform.python_version()}",
        "tp": args.tp,
        "models": rows,
        "marginal": marginal,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(marginal, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
