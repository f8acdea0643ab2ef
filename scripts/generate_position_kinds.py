"""Regenerate data/position_kinds.json: how each model type of the installed transformers encodes positions.

Usage: python scripts/generate_position_kinds.py

Rule SEQ001 needs to know what happens past a model's `max_position_embeddings`. A learned position table
(`nn.Embedding(config.max_position_embeddings, ...)`, GPT-2's `wpe`, OPT's and Whisper's positional embeddings,
which subclass `nn.Embedding`) raises `IndexError: index out of range in self` there. Rotary (RoPE), ALiBi and
relative-bucket positions compute the position signal, so the model runs and only degrades. This script reads
each model type's own `modeling_<name>.py` as text (nothing is imported but the auto mapping's names) and records
the first line that decides its kind, so every row cites transformers' file and line.

A learned table wins over the others: one table indexed by position is enough to crash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.io.write_output import write_output  # noqa: E402
from advisor.knowledge.position_reader import read_position_kinds  # noqa: E402


def main() -> None:
    table = read_position_kinds()
    out = Path(__file__).resolve().parents[1] / "data" / "position_kinds.json"
    document = {
        "schema_version": 1,
        "description": "How each model type encodes positions, read from its modeling file in the transformers "
                       "release named here by scripts/generate_position_kinds.py (file and line of the deciding "
                       "line; paths relative to the transformers package). learned: an nn.Embedding sized by "
                       "max_position_embeddings (or n_positions, max_target_positions, ...), which raises IndexError "
                       "past it; rotary, alibi, relative: computed positions, which run past it and degrade.",
        **table,
    }
    write_output(out, json.dumps(document, indent=1, sort_keys=False) + "\n")
    rows = table["rows"]
    assert isinstance(rows, dict)
    kinds = sorted({r["kind"] for r in rows.values()})
    counts = {k: sum(1 for r in rows.values() if r["kind"] == k) for k in kinds}
    print(f"wrote {out}: {counts}, {len(table['undecided'])} undecided")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
