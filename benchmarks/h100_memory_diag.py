"""What is live at the measured peak, for the memory rows the simulator misses (issue 13).

Usage (GPU machine, repository root): python benchmarks/h100_memory_diag.py OUT_DIR [NAME:ATTN:QUANT:BATCH:PROMPT:PADDED ...]
(cases on the command line replace CASES, e.g. bart-base:sdpa:none:16:128:1)
Builds each case exactly as benchmarks/h100_memory.py does, records the CUDA caching allocator's history
(torch.cuda.memory._record_memory_history) during the measured call, replays the trace to the peak, and writes
OUT_DIR/mem-diag.json: per case, the measured peak, the bytes live before the call (weights), and the largest
allocations live at the peak with the Python frames that made them. Diagnosis only: the simulator is fixed from
sources, and the table is re-measured by h100_memory.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h100_memory as hm  # noqa: E402 - same models, inputs and measurement as the table

# (name, attn, quantization, batch, prompt, padded)
CASES = [
    ("t5-base", "sdpa", "none", 1, 4096, False),
    ("t5-base", "eager", "none", 1, 4096, False),
    ("falcon-7b-mqa", "sdpa", "none", 1, 2048, False),
    ("qwen2-moe", "sdpa", "none", 16, 128, True),
    ("gpt-bigcode-mqa", "sdpa", "none", 16, 128, True),
    ("gpt-bigcode-mqa", "sdpa", "none", 1, 4096, False),
    ("mistral-7b-sliding", "sdpa", "8bit", 16, 128, True),
    ("mistral-7b-sliding", "sdpa", "8bit", 1, 4096, False),
    ("gpt-bigcode-mqa", "sdpa", "4bit", 16, 128, True),
]
KEEP = ("transformers/", "bitsandbytes/", "torch/nn/functional", "torch/nn/modules", "generation/")


def _frames(frames: list[dict[str, Any]]) -> list[str]:
    out = [f"{f['filename'].split('site-packages/')[-1]}:{f['line']} {f['name']}" for f in frames
           if any(k in f.get("filename", "") for k in KEEP)]
    return out[:5]


def _at_peak(trace: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Replay alloc/free to the highest point; the live blocks there."""
    live: dict[int, int] = {}
    total = peak = peak_at = 0
    for i, ev in enumerate(trace):
        if ev["action"] == "alloc":
            live[ev["addr"]] = ev["size"]
            total += ev["size"]
        elif ev["action"] == "free_completed" and ev["addr"] in live:
            total -= live.pop(ev["addr"])
        if total > peak:
            peak, peak_at = total, i
    blocks: dict[int, dict[str, Any]] = {}
    for ev in trace[: peak_at + 1]:
        if ev["action"] == "alloc":
            blocks[ev["addr"]] = ev
        elif ev["action"] == "free_completed":
            blocks.pop(ev["addr"], None)
    return peak, sorted(blocks.values(), key=lambda e: -e["size"])


def main() -> None:
    import torch
    import transformers

    out = Path(sys.argv[1])
    cases = [(n, a, q, int(b), int(p), pad == "1") for n, a, q, b, p, pad in (c.split(":") for c in sys.argv[2:])] or CASES
    out.mkdir(parents=True, exist_ok=True)
    results = []
    torch.matmul(torch.ones(8, 8, device="cuda"), torch.ones(8, 8, device="cuda"))
    start = time.perf_counter()
    for name, attn, quant, batch, prompt, padded in cases:
        if time.perf_counter() - start > float(__import__('os').environ.get('DIAG_BUDGET', '75')):
            break
        config, cls = hm._config(transformers, name)
        try:
            model = hm.build(torch, transformers, config, cls, name, attn, quant)
            generative = not cls.__name__.endswith("ForMaskedLM")
            vocab = int(config.get_text_config().vocab_size)
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.memory._record_memory_history(max_entries=400000, stacks="python")
            measured = hm._measure(torch, model, generative, batch, prompt, padded, vocab)
            snap = torch.cuda.memory._snapshot()
            torch.cuda.memory._record_memory_history(enabled=None)
            trace = snap["device_traces"][0]
            peak, blocks = _at_peak(trace)
            by_site: dict[str, int] = defaultdict(int)
            for b in blocks:
                by_site[" <- ".join(_frames(b.get("frames", []))[:2]) or "?"] += b["size"]
            results.append({
                "name": name, "attn": attn, "quantization": quant, "batch": batch, "prompt": prompt,
                "padded": padded, "layers": hm.MODELS[name][4], "measured_peak_bytes": measured,
                "live_before_call_bytes": before, "traced_peak_over_before_bytes": peak,
                "largest_live_at_peak": [{"bytes": b["size"], "frames": _frames(b.get("frames", []))}
                                         for b in blocks[:25]],
                "live_at_peak_by_site": sorted(([v, k] for k, v in by_site.items()), reverse=True)[:40],
                "live_blocks_at_peak": len(blocks), "live_bytes_under_1mib": sum(b["size"] for b in blocks if b["size"] < 2**20),
                "all_live_at_peak": [[b["size"], " <- ".join(_frames(b.get("frames", []))[:3])] for b in blocks[:400]],
            })
            print(name, attn, quant, batch, prompt, measured, before, peak, flush=True)
        except Exception as exc:  # noqa: BLE001 - a failed case is a row
            torch.cuda.memory._record_memory_history(enabled=None)
            results.append({"name": name, "attn": attn, "quantization": quant, "error": f"{type(exc).__name__}: {exc}"[:400]})
            print(results[-1], flush=True)
        model = None
        hm._free(torch)
        (out / "mem-diag.json").write_text(json.dumps({"torch": torch.__version__,
                                                       "transformers": transformers.__version__,
                                                       "cases": results}, indent=1))


if __name__ == "__main__":
    main()
