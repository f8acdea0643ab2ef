"""Regenerate data/attention/transformers-<version>.json from the installed transformers.

Usage: python scripts/refresh_attention_table.py
The table is what `advisor matrix` and the planner use when the target's transformers is not installed
here; tests/unit/test_knowledge.py reports drift between it and the installed release.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.io.write_output import write_output  # noqa: E402
from advisor.knowledge.introspect import read_attention_support  # noqa: E402


def main() -> None:
    table = read_attention_support()
    out = Path(__file__).resolve().parents[1] / "data" / "attention" / f"transformers-{table['transformers']}.json"
    write_output(out, json.dumps(table, indent=1) + "\n")
    print(f"wrote {out} ({len(table['architectures'])} architectures, {len(table['skipped'])} skipped)")


if __name__ == "__main__":
    main()
