#!/usr/bin/env python
"""Build `data/release_constraints.json`: version-dependent facts read from each transformers release's own files.

Why: hand-typed facts drift (FA3's gate moved from CC 9 to CC 8, FA4 arrived in 5.4, every release has its own
torch floor). Reading them from the released source, release by release, makes each value checkable: it
carries the release, the file inside the wheel and the line it came from.

How: for each release of `data/attention_history.json` (4.36 .. 5.24), `pip download --no-deps transformers==X`
into a wheel cache outside the repository (default `~/.cache/advisor/transformers-wheels`), then read the
files straight from the wheel zip as text and AST; nothing is installed or imported.

    python scripts/generate_release_constraints.py                  # every release of the history file
    python scripts/generate_release_constraints.py --add 5.25.0     # a new release: add it and regenerate
    python scripts/generate_release_constraints.py --cache DIR      # where the wheels are kept

Output: consecutive releases with the same value are merged into one run, `{"from", "to", "value",
"release", "file", "line"}`, where `release`/`file`/`line` cite the first release of the run (`line` is null
when the fact is absent there, and then `file` names the file that was searched). A fact whose line moves with
every release (the on-the-fly quantization facts) also keeps each release's own line in `lines`, keyed by release.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advisor.knowledge.release_reader import EXTRACTORS, Fact, Release, runs

HISTORY = REPO / "data" / "attention_history.json"
OUTPUT = REPO / "data" / "release_constraints.json"
DEFAULT_CACHE = Path.home() / ".cache" / "advisor" / "transformers-wheels"



def wheel_for(version: str, cache: Path) -> Path:
    wheel = cache / f"transformers-{version}-py3-none-any.whl"
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(cache),
             f"transformers=={version}"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not wheel.exists():
            raise SystemExit(f"pip download transformers=={version} failed: {proc.stderr.strip()[-400:]}")
    return wheel


def generate(releases: list[str], cache: Path) -> dict[str, Any]:
    table: dict[str, list[tuple[str, Fact]]] = {name: [] for name in EXTRACTORS}
    for version in releases:
        release = Release(version, wheel_for(version, cache))
        for name, extract in EXTRACTORS.items():
            table[name].append((version, extract(release)))
        print(f"read transformers {version}", file=sys.stderr)
    return {
        "schema_version": 1,
        "description": (
            "Version-dependent facts read from each transformers release's own files. Each fact is a list of runs "
            "of consecutive stored releases with the same value; `release`, `file` and `line` cite where the run's "
            "first release states it (line null: absent there, `file` is the file searched)."
        ),
        "generated_by": "python scripts/generate_release_constraints.py",
        "source": "transformers wheels from PyPI (pip download --no-deps), read as text/AST without installing",
        "releases": releases,
        "facts": {name: runs(values) for name, values in table.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="wheel cache (outside the repository)")
    parser.add_argument("--add", nargs="*", default=[], metavar="VERSION", help="releases to add to the stored list")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    stored = json.loads(HISTORY.read_text(encoding="utf-8"))["releases"]
    if OUTPUT.exists():
        stored = sorted(set(stored) | set(json.loads(OUTPUT.read_text(encoding="utf-8"))["releases"]), key=Version)
    releases = sorted(set(stored) | set(args.add), key=Version)
    data = generate(releases, args.cache)
    args.output.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(releases)} releases)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
