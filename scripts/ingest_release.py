#!/usr/bin/env python
"""Add a new transformers release to every table in `data/`, with each generator, in one command.

    python scripts/ingest_release.py 5.25.0              # install 5.25.0 here first: some readers import it
    python scripts/ingest_release.py --without 5.25.0 --output DIR

The first form runs, in order: `generate_release_constraints.py --add` (the wheel, read as text), then
`generate_attention_history.py --add` (the release installed into a throwaway folder and its classes read),
`refresh_attention_table.py` (the per-release table of `advisor matrix`), `generate_acceptance.py --releases` and
`matrix_from_acceptance.py` (the release's executed attention acceptance, which the matrix then equals),
`generate_quantizable_share.py
--releases` (every model type built on the meta device), `precompute_models.py` (the shipped models' counts,
attention flags and parameter formulas), `precompute_memory.py` (their exact memory formulas), `precompute_memory_scaling.py` (how those scale to relatives) and
`generate_position_kinds.py`. The installed transformers must be the release being ingested (the last six read it
in-process). docs/knowledge.md says how long each step takes.

The second form writes a copy of `data/` without one release (the inverse of the first): with
`ADVISOR_DATA_DIR=DIR`, the advisor meets that release as one newer than its tables, as users meet a release
that came out after the advisor was built. tests/unit/test_day0.py uses it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SCRIPTS = REPO / "scripts"


def _steps(release: str) -> list[list[str]]:
    return [
        ["generate_release_constraints.py", "--add", release],
        ["generate_attention_history.py", "--add", release],
        ["refresh_attention_table.py"],
        ["generate_acceptance.py", "--releases", release],  # issue 28: the matrix is the executed acceptance
        ["matrix_from_acceptance.py"],
        ["generate_quantizable_share.py", "--releases", release],
        ["precompute_models.py"],
        ["precompute_memory.py"],  # issue 27: the shipped models' exact memory formulas for this release
        ["precompute_memory_scaling.py", "--processes", "2"],  # and how they scale to the models' relatives
        ["generate_position_kinds.py"],
    ]


def ingest(release: str) -> int:
    installed = metadata.version("transformers")
    if installed != release:
        print(f"install transformers=={release} first (installed: {installed}): five readers import it",
              file=sys.stderr)
        return 2
    for step in _steps(release):
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(SCRIPTS / step[0]), *step[1:]], cwd=REPO, check=False)
        print(f"{' '.join(step)}: exit {done.returncode}, {time.monotonic() - started:.0f} s", file=sys.stderr)
        if done.returncode != 0:
            return done.returncode
    return 0


# -- the inverse: a copy of data/ without one release ----------------------------------------------------------


def _drop_runs(runs: list[list[Any]], release: str, releases: list[str]) -> list[list[Any]]:
    """A run-length list `[[first, value], ...]` without `release`: a run starting there now starts at the next
    stored release, or goes when that belongs to the next run already."""
    after = releases[releases.index(release) + 1] if releases.index(release) + 1 < len(releases) else None
    out: list[list[Any]] = []
    for i, (first, value) in enumerate(runs):
        if first != release:
            out.append([first, value])
        elif after is not None and not (i + 1 < len(runs) and runs[i + 1][0] == after):
            out.append([after, value])
    return out


def _without_constraints(table: dict[str, Any], release: str) -> None:
    releases = table["releases"]
    before = releases[releases.index(release) - 1]
    for name, runs in table["facts"].items():
        kept = []
        for run in runs:
            if run["from"] == run["to"] == release:
                continue
            if run["to"] == release:
                run["to"] = before
            if run.get("lines"):
                run["lines"].pop(release, None)
            kept.append(run)
        table["facts"][name] = kept
    releases.remove(release)


def _without_history(table: dict[str, Any], release: str) -> None:
    index = table["releases"].index(release)
    for row in table["architectures"].values():
        for impl in ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention", "flash_attention_4"):
            if impl in row:
                row[impl] = row[impl][:index] + row[impl][index + 1:]
        if "class_history" in row:
            row["class_history"] = [entry for entry in row["class_history"] if entry[0] != release] or None
            if row["class_history"] is None:
                del row["class_history"]
    table["architectures"] = {k: v for k, v in table["architectures"].items() if set(v["sdpa"]) != {"-"}}
    table["packages"].pop(release, None)
    table["failures"].pop(release, None)
    if "acceptance" in table:
        table["acceptance"]["releases"] = [r for r in table["acceptance"]["releases"] if r != release]
    table["releases"].remove(release)


def _without_share(table: dict[str, Any], release: str) -> None:
    releases = list(table["releases"])
    for key in ("model_types", "classes", "not_built"):
        dropped = {k: _drop_runs(v, release, releases) for k, v in table[key].items()}
        table[key] = {k: runs for k, runs in dropped.items() if any(value is not None for _, value in runs)}
    table["rules"].pop(release, None)
    table.get("reuse", {}).get("releases", {}).pop(release, None)
    table["releases"].remove(release)


def _without_analysis(table: dict[str, Any], release: str) -> None:
    for key in ("parameter_counts", "attention_support", "formulas"):
        for digest, entries in list(table[key].items()):
            for entry in entries:
                entry["releases"] = [r for r in entry["releases"] if r != release]
            table[key][digest] = [e for e in entries if e["releases"]]
            if not table[key][digest]:
                del table[key][digest]
    table["releases"] = [r for r in table["releases"] if r != release]


def without(release: str, output: Path) -> int:
    """Copy data/ to `output` with `release` removed from every per-release table."""
    if output.exists():
        print(f"{output} exists; name a new folder", file=sys.stderr)
        return 2
    shutil.copytree(DATA, output)
    (output / "attention" / f"transformers-{release}.json").unlink(missing_ok=True)
    (output / "acceptance" / f"transformers-{release}.json").unlink(missing_ok=True)
    edits = {
        "release_constraints.json": _without_constraints,
        "attention_history.json": _without_history,
        "quantizable_share.json": _without_share,
        "model_analysis.json": _without_analysis,
    }
    for name, edit in edits.items():
        path = output / name
        table = json.loads(path.read_text(encoding="utf-8"))
        if release not in table["releases"]:
            print(f"{name} does not hold transformers {release}", file=sys.stderr)
            return 2
        edit(table, release)
        path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="a transformers release, e.g. 5.25.0")
    parser.add_argument("--without", action="store_true",
                        help="write a copy of data/ without this release to --output instead")
    parser.add_argument("--output", type=Path, help="the folder for --without (must not exist)")
    args = parser.parse_args(argv)
    if args.without:
        if args.output is None:
            parser.error("--without needs --output DIR")
        return without(args.release, args.output)
    return ingest(args.release)


if __name__ == "__main__":
    raise SystemExit(main())
