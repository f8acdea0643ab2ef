"""Relatives of the shipped models, answered by a scaled shipped formula, against a direct simulation (issue 27).

    PYTHONPATH=. python benchmarks/relatives_memory.py [--out docs/benchmarks/memory/relatives.json]
    PYTHONPATH=. python benchmarks/relatives_memory.py --quantization 8bit 4bit \
        --out docs/benchmarks/memory/relatives-bnb.json

Nothing here was fitted on: for every scaling in data/memory_scaling.json on the H100 and CPU targets in
bfloat16 / sdpa (unquantized, or with `--quantization` bitsandbytes 8-bit / 4-bit), two relatives the precompute
never built: the vocabulary grown by 77 tokens (a fine-tune's added tokens; an odd size), and every free size field
times 5/4 with two more layers' worth of repeats (wider and deeper; skipped where a size is not whole). Each is
asked through `formula_store.relative` (what the planner asks once its own formulas miss), then simulated directly
on meta tensors at the planner's default length and at 1000 tokens (or the position limit); a row is exact when
the five figures are byte-equal. Also recorded: the lookup's time (no torch) and the simulation's.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.estimate import formula_scaling, formula_store  # noqa: E402
from advisor.estimate.adapter import _simulator_stamp  # noqa: E402
from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.knowledge.installed import installed_version  # noqa: E402
from advisor.model.resolve import describe_config  # noqa: E402
from advisor.plan.recommend import default_seq_len  # noqa: E402


def _relatives(entry: dict[str, Any], config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if "vocab_size" in entry["free"]:
        out["vocab+77"] = {**config, "vocab_size": config["vocab_size"] + 77}
    wider = {f: Fraction(v) * Fraction(5, 4) for f, v in entry["free"].items()}
    if all(v.denominator == 1 for v in wider.values()):
        relative = {**config, **{f: int(v) for f, v in wider.items()}}
        if entry.get("layer_field"):
            relative[entry["layer_field"]] += 2 * int(entry["period"])
        out["x5/4"] = relative
    return {name: c for name, c in out.items() if formula_scaling.applicable(entry, c) is not None}


def main() -> None:
    from advisor.estimate.simulate import simulate

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quantization", nargs="+", default=["none"], choices=["none", "8bit", "4bit"])
    args = parser.parse_args()
    stamp = _simulator_stamp()
    shipped = {m.hub_id: dict(m.config) for m in load_knowledge().models}
    rows = []
    for entry in formula_scaling.memory_scaling().get("releases", {}).get(installed_version() or "", []):
        inputs = entry["inputs"]
        if (inputs["dtype"] != "bfloat16" or inputs["attn"] != "sdpa" or inputs["capability"] not in ([9, 0], [0, 0])
                or inputs["quantization"] not in args.quantization):
            continue
        base = shipped[entry["hub_id"]]
        for name, config in _relatives(entry, base).items():
            key = formula_store.formula_key(config, {k: (tuple(v) if isinstance(v, list) else v)
                                                     for k, v in inputs.items()})
            spec = describe_config(copy.deepcopy(config), name=entry["hub_id"], source="folder")
            for prompt in sorted({default_seq_len(spec, None), min(1000, spec.max_positions or 1000)}):
                start = time.perf_counter()
                got = formula_store.relative(key, stamp, batch=1, prompt=prompt, seq_len=prompt)
                looked = time.perf_counter() - start
                start = time.perf_counter()
                direct = simulate(copy.deepcopy(config), architecture=inputs["architecture"], dtype="bfloat16",
                                  attn="sdpa", quantization=inputs["quantization"], batch=1, prompt_len=prompt,
                                  seq_len=prompt,
                                  device=inputs["device"], capability=tuple(inputs["capability"]))
                simulated = time.perf_counter() - start
                figures = ("weights_bytes", "prefill_peak_bytes", "decode_peak_bytes", "kv_cache_bytes", "peak_bytes")
                row = {"model": entry["hub_id"], "relative": name, "device": inputs["device"],
                       "quantization": inputs["quantization"], "prompt": prompt,
                       "answered": got is not None,
                       "exact": got is not None and all(getattr(got, f) == getattr(direct, f) for f in figures),
                       "peak_bytes": direct.peak_bytes, "scaled_peak_bytes": got.peak_bytes if got else None,
                       "lookup_s": round(looked, 4), "simulate_s": round(simulated, 3)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {"rows": len(rows), "answered": sum(r["answered"] for r in rows), "exact": sum(r["exact"] for r in rows),
               "models": len({r["model"] for r in rows}), "transformers": installed_version()}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"what": __doc__.strip().splitlines()[0], "summary": summary, "rows": rows},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
