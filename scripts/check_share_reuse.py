#!/usr/bin/env python
"""Check the structure-key reuse of the quantizable-share table against full readings (issue 17).

Why: `generate_quantizable_share.py --all` reuses a type's row from another release when the structure keys
match (scripts/quantizable_share_key.py). This compares, for releases read both ways, every type of the
table's reuse reading with a full reading of the same release (every type built on the meta device), and fails
on any difference. Verify releases that were not read in full when the table was generated (else the table
holds the full reading itself and the check proves nothing).

    python scripts/check_share_reuse.py --verify 4.46.3 5.10.4 --output docs/quantizable-share-reuse.json

The full readings come from `.dev/quantizable_share/<release>.json` (made by
`generate_quantizable_share.py --releases R --output <copy>`), or are read here when missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import generate_quantizable_share as gen


def compare(full: dict[str, Any], reused: dict[str, Any]) -> dict[str, Any]:
    """Every type of a full reading against the reuse reading of the same release."""
    def outcome(reading: dict[str, Any], t: str) -> Any:
        if t in reading["rows"]:
            return {"row": reading["rows"][t], "class": reading["classes"].get(t)}
        if t in reading["not_built"]:
            return {"not_built": reading["not_built"][t]}
        return None

    types = sorted(set(full["rows"]) | set(full["not_built"]) | set(reused["rows"]) | set(reused["not_built"]))
    mismatches = []
    for t in types:
        a, b = outcome(full, t), outcome(reused, t)
        if a != b:
            mismatches.append({"type": t, "full": a, "reuse": b})
    return {"types": len(types), "built": reused.get("built"), "reused": reused.get("reused"),
            "reuse_seconds": reused.get("seconds"), "mismatches": len(mismatches), "differences": mismatches,
            "rule_same": full["rule"] == reused["rule"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--verify", nargs="+", required=True, help="releases to compare")
    parser.add_argument("--table", type=Path, default=gen.DEFAULT_OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=gen.DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    args = parser.parse_args()

    table = json.loads(args.table.read_text(encoding="utf-8"))
    readings = gen.explode(table)
    counts = table.get("reuse", {}).get("releases", {})
    results: dict[str, Any] = {}
    failed = False
    for release in args.verify:
        if release not in readings:
            print(f"{release}: not in {args.table}", file=sys.stderr)
            return 2
        if not counts.get(release, {}).get("reused"):
            print(f"{release}: the table holds a full reading of it (nothing reused): verify another release",
                  file=sys.stderr)
            return 2
        readings[release].update(counts[release])
        full = gen.read_release(release, cache=args.cache_dir, jobs=args.jobs, refresh=False, keep_env=True)
        result = compare(full, readings[release])
        result["full_seconds"] = full.get("seconds")
        results[release] = result
        failed |= result["mismatches"] > 0
        print(f"{release}: {result['types']} types, {result['built']} built, {result['reused']} reused, "
              f"{result['mismatches']} mismatches", file=sys.stderr)
        for diff in result["differences"][:20]:
            print(f"  {diff['type']}: full {diff['full']} / reuse {diff['reuse']}", file=sys.stderr)
    if args.output:
        args.output.write_text(json.dumps({"generated_by": "scripts/check_share_reuse.py", "table": str(
            args.table.relative_to(REPO) if args.table.is_relative_to(REPO) else args.table), "releases": results},
            indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
