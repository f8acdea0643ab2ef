"""How many QUANT009 verdicts the executed quantizer table changes: before (the requirements read from transformers
5.25.0 source in data/quant_methods.json, applied to every release, plus data/dequant_fallbacks.json's FP8 row, as
QUANT009 judged them until issue 28's quantizer run) against the executed case, per stored release x pre-quantized
method x device x installed-package condition of data/quantizer_acceptance.json (undecided cases left out).

    python scripts/quantizer_before_after.py [--before-ref 69362e9] [--out docs/knowledge/quantizer-before-after.json]

The old judgement is re-stated here from the old tables (read with `git show REF:data/...`): a library of `requires`
not installed, a compute capability below `min_cc`, or a CPU where `device` has no 'cpu' refuse; FP8 from 5.0
without a GPU or below 8.9 dequantizes (only accelerate still needed); else accepted. The dtype: the old table's
`gpu_dtype` warned for bfloat16 on a GPU (GPTQ, AWQ); the executed case warns where update_dtype changes it.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _old(ref: str, name: str) -> dict[str, Any]:
    return dict(json.loads(subprocess.run(["git", "show", f"{ref}:data/{name}"], cwd=REPO, check=True,
                                          capture_output=True, text=True).stdout))


def before(method: dict[str, Any], fallbacks: list[dict[str, Any]], release: str, device: str,
           absent: set[str]) -> str:
    on_gpu = device != "cpu"
    cc = tuple(int(x) for x in device.split(".")) if on_gpu else None
    for row in fallbacks:
        if row["method_key"] == method["key"] and SpecifierSet(row["covers"]).contains(Version(release)):
            low = cc is not None and cc < tuple(int(x) for x in row["min_cc"].split("."))
            if not on_gpu or low:
                return "refused" if set(row["still_needs"]) & absent else "dequantizes"
    if set(method["requires"]) & absent:
        return "refused"
    if method["min_cc"] and cc is not None and cc < tuple(int(x) for x in method["min_cc"].split(".")):
        return "refused"
    if not on_gpu and "cpu" not in method["device"]:
        return "refused"
    return "accepted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-ref", default="69362e9", help="the commit whose tables were 'before'")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "knowledge" / "quantizer-before-after.json")
    args = parser.parse_args(argv)
    methods = {m["key"]: m for m in _old(args.before_ref, "quant_methods.json")["methods"]}
    fallbacks = _old(args.before_ref, "dequant_fallbacks.json")["rows"]
    table = json.loads((REPO / "data" / "quantizer_acceptance.json").read_text())
    counts: collections.Counter[str] = collections.Counter()
    changed: collections.Counter[tuple[str, str, str]] = collections.Counter()
    examples: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = collections.defaultdict(list)
    dtype = collections.Counter()
    for release, entry in sorted(table["releases"].items(), key=lambda kv: Version(kv[0])):
        executed = table["executed"][entry["content"]]
        for key, block in (executed.get("methods") or {}).items():
            if not table["methods"][key]["pre_quantized"]:
                continue
            for device, absent, verdict, detail, _at, bf16, _none in table["case_sets"][block["cases"]]:
                if verdict == "undecided":
                    counts["undecided"] += 1
                    continue
                counts["decided"] += 1
                gone = set(absent.split("+")) if absent != "-" else set()
                old = before(methods[key], fallbacks, release, device, gone)
                if old != verdict:
                    counts["differ"] += 1
                    changed[(key, old, verdict)] += 1
                    detail = table["messages"][detail] if detail is not None else ""
                    change = f"{key} {old}->{verdict}"
                    releases = sorted({*examples.get(change, []), release}, key=Version)
                    examples[change] = releases  # which releases it happens in
                    if device in ("cpu", "8.0") and len(samples[change]) < 3 and release in ("4.57.6", "5.0.0", "5.25.0"):
                        samples[change].append(f"{release} {device} absent={absent}: before {old}, executed {verdict}"
                                               f" ({(detail or '')[:120]})")
                if device != "cpu" and verdict != "refused":
                    old_warns = bool(methods[key].get("gpu_dtype"))
                    new_warns = bf16 not in (None, "bfloat16")
                    dtype["cases"] += 1
                    dtype["differ"] += old_warns != new_warns
    result = {"generated_by": "python scripts/quantizer_before_after.py", "before_ref": args.before_ref,
              "counts": dict(counts), "changes": {f"{k} {o}->{n}": c for (k, o, n), c in sorted(changed.items())},
              "dtype_warning": dict(dtype),
              "releases_of_change": {k: f"{v[0]} .. {v[-1]} ({len(v)} releases)" for k, v in examples.items()},
              "samples": dict(samples)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
