"""How many memory figures `recommend` and `check` print from the simulator (a shipped formula) and how many from
the closed form, over every shipped model on the common targets (issue 27: every printed figure within 5%).

    PYTHONPATH=. python benchmarks/memory_coverage.py [--out docs/benchmarks/memory/coverage-<label>.json]
    python benchmarks/memory_coverage.py --compare BEFORE.json AFTER.json     # a Markdown table of both

Each run is the CLI in this process, `--format json --no-cache` (the shipped formulas only: a user's first run),
on `--gpu H100`, `--gpu A100-80GB`, `--gpu L4`, `--gpu T4` (the GPU table, this machine's libraries), the
cpu_only snapshot and three GPU snapshots with bitsandbytes (tests/fixtures/envs: H100, A100-80GB, T4; with
`--assume transformers==` the installed release, as the snapshots were taken on 5.24). A figure is every distinct memory object of the report (the choice, each alternative, each
candidate passed over), counted by its `method`: `simulated` or `estimated` (the closed form).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"H100": ("--gpu", "H100"), "A100-80GB": ("--gpu", "A100-80GB"), "L4": ("--gpu", "L4"),
           "T4": ("--gpu", "T4"), "cpu_only": ("--env", str(ROOT / "tests" / "fixtures" / "envs" / "cpu_only.json")),
           # with bitsandbytes (and FlashAttention) installed: the 8-bit and 4-bit candidates print figures too (the
           # snapshots were taken with transformers 5.24: the installed release is assumed, whose rules they follow)
           **{name: ("--env", str(ROOT / "tests" / "fixtures" / "envs" / f"{snapshot}.json"), "--assume", "{release}")
              for name, snapshot in (("H100+bnb", "h100_fa2_fa3_bnb"), ("A100-80GB+bnb", "a100_80gb_fa2_bnb"),
                                     ("T4+bnb", "t4_bnb_fa2"))}}
COMMANDS = ("recommend", "check")


def _figures(report: Any) -> list[dict[str, Any]]:
    """Every distinct memory object in a JSON report (one with a `method` and a `total_bytes`)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, label: str) -> None:
        if isinstance(node, dict):
            if "method" in node and "total_bytes" in node:
                found.setdefault(json.dumps(node, sort_keys=True) + label, node)
                return
            name = node.get("label") or node.get("candidate") or label
            for value in node.values():
                walk(value, str(name))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{label}/{i}")

    walk(report, "")
    return list(found.values())


def _run(argv: list[str]) -> tuple[int, str]:
    from advisor.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return code, out.getvalue()


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Per target: simulated / all printed figures, before and after."""
    lines = ["| target | before: simulated / figures | after: simulated / figures |", "|---|---|---|"]

    def cell(counts: dict[str, int] | None) -> str:
        if counts is None:
            return "not run"
        total = sum(counts.values())
        return f"{counts.get('simulated', 0)} / {total} ({100 * counts.get('simulated', 0) / max(total, 1):.0f}%)"

    for target in TARGETS:
        lines.append(f"| {target} | {cell(before['by_target'].get(target))} | {cell(after['by_target'].get(target))} |")
    lines.append(f"| all | {cell(before['figures'])} | {cell(after['figures'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        print(compare(*(json.loads(path.read_text()) for path in args.compare)))
        return
    from advisor.knowledge import load_knowledge
    from advisor.knowledge.installed import installed_version

    models = sorted(m.hub_id for m in load_knowledge().models)
    rows = []
    totals: Counter[str] = Counter()
    start = time.perf_counter()
    for model in models:
        for target, flags in TARGETS.items():
            flags = tuple(f"transformers=={installed_version()}" if f == "{release}" else f for f in flags)
            for command in COMMANDS:
                code, text = _run([command, model, *flags, "--format", "json", "--no-cache"])
                try:
                    report = json.loads(text)
                except ValueError:
                    rows.append({"model": model, "target": target, "command": command, "exit": code, "error": True})
                    continue
                methods = Counter(f["method"] for f in _figures(report))
                totals.update(methods)
                rows.append({"model": model, "target": target, "command": command, "exit": code, **methods})
    by_target = {t: dict(sum((Counter({k: v for k, v in r.items() if k in ("simulated", "estimated")})
                              for r in rows if r["target"] == t), Counter())) for t in TARGETS}
    result = {"transformers": installed_version(), "runs": len(rows), "figures": dict(totals),
              "by_target": by_target, "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
