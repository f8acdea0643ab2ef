"""Regenerate docs/matrix/index.html (the offline page) and docs/matrix/matrix.md from the shipped tables.

Usage: python scripts/build_matrix_page.py [--transformers VERSION] [--out DIR]
Default release: the newest shipped data/attention/transformers-*.json, not whatever transformers is
installed here, so the published page does not depend on the machine that rebuilds it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.cli import main as advisor_main  # noqa: E402
from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.model.attention_support import nearest_table  # noqa: E402


def build(out: Path, transformers: str | None = None) -> list[Path]:
    """Write both files through the CLI (the same code path users run); returns their paths."""
    if transformers is None:
        table = nearest_table(load_knowledge(), None)
        transformers = table.transformers if table is not None else None
    out.mkdir(parents=True, exist_ok=True)
    version = ["--transformers", transformers] if transformers else []
    written = []
    for fmt, name in (("html", "index.html"), ("markdown", "matrix.md")):
        path = out / name
        code = advisor_main(["matrix", "--full", *version, "--format", fmt, "-o", str(path)])
        if code != 0:
            raise SystemExit(code)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transformers", metavar="VERSION", help="release to show (default: newest shipped table)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "matrix", metavar="DIR")
    args = parser.parse_args(argv)
    for path in build(args.out, args.transformers):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
