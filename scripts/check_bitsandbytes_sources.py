"""Re-check every source line of data/bitsandbytes.json against a git clone of bitsandbytes.

Usage: python scripts/check_bitsandbytes_sources.py PATH-TO-BITSANDBYTES-CLONE
       (git clone https://github.com/bitsandbytes-foundation/bitsandbytes; the tags must be fetched)

For each row, each source's `quote` must be on line `line` of `file` at `tag` (`git show TAG:FILE`). A quote
that starts with "... " is matched from there on. Exit status 1 lists the mismatches; add a row for a new
bitsandbytes release by reading its installation docs and cextension.py at the new tag, then run this.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def mismatches(table: dict[str, object], clone: Path) -> list[str]:
    """One line per source whose quote is not on the cited line."""
    problems: list[str] = []
    cache: dict[tuple[str, str], list[str]] = {}
    for row in table["rows"]:  # type: ignore[attr-defined]
        for source in row["sources"]:
            if "reproduction" in source:  # a run of the wheel (scripts/check_bnb_cpu.py), not a line to re-read
                continue
            key = (source["tag"], source["file"])
            if key not in cache:
                shown = subprocess.run(["git", "-C", str(clone), "show", f"{key[0]}:{key[1]}"],
                                       capture_output=True, text=True, check=False)
                cache[key] = shown.stdout.splitlines() if shown.returncode == 0 else []
            lines = cache[key]
            quote = source["quote"].split("... ", 1)[-1].strip()
            line = lines[source["line"] - 1] if 0 < source["line"] <= len(lines) else ""
            if not lines or quote[:60] not in line:
                problems.append(f"{row['fact']} {row['covers']}: {key[0]}:{key[1]}:{source['line']} is {line.strip()!r}")
    return problems


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    table = json.loads((Path(__file__).resolve().parents[1] / "data" / "bitsandbytes.json").read_text())
    problems = mismatches(table, Path(sys.argv[1]))
    for problem in problems:
        print(problem)
    print(f"{sum(len(r['sources']) for r in table['rows'])} sources checked, {len(problems)} mismatches")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
