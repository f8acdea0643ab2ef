"""How a model encodes positions, which decides what a sequence past `max_position_embeddings` does.

A learned table (`nn.Embedding(config.max_position_embeddings, ...)`: GPT-2, OPT, BERT, Whisper, BART) raises
`IndexError: index out of range in self` past its last row. Rotary, ALiBi, relative-bucket and self-extending
sinusoidal positions are computed, so the model runs there and only degrades. The kind per model type is read
from each modeling file of a transformers release by scripts/generate_position_kinds.py into
data/position_kinds.json (with `advisor.knowledge.position_reader`, which also reads a newer installed release:
see `advisor.knowledge.installed`); a config that the table does not cover falls back to its own keys (`rope_theta`,
`rope_scaling`, `rope_parameters`, `alibi`), and else the kind stays unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Kind = Literal["learned", "rotary", "alibi", "relative", "sinusoidal", "unknown"]
COMPUTED: frozenset[str] = frozenset({"rotary", "alibi", "relative", "sinusoidal"})
_ROPE_KEYS = ("rope_parameters", "rope_scaling", "rope_theta")


@dataclass(frozen=True)
class PositionKind:
    kind: Kind
    source: str  # "transformers 5.24.0 models/gpt2/modeling_gpt2.py:492", or the config key that decided

    @property
    def computed(self) -> bool:
        return self.kind in COMPUTED


@lru_cache(maxsize=8)
def _table(root: Path, cache: bool) -> dict[str, Any]:
    """The shipped table, or the installed release's own reading where that release is newer than it."""
    path = root / "position_kinds.json"
    table: dict[str, Any] = (dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file()
                             else {"transformers": None, "rows": {}})
    from advisor.knowledge.installed import installed, is_newer, release_info

    here = installed()
    if here is not None and table.get("transformers") and is_newer(here.version, table["transformers"]):
        info = release_info(here, cache=cache)
        if info is not None and isinstance(info.get("positions"), dict):
            return dict(info["positions"])
    return table


def position_kind(model_type: str, config: dict[str, Any], root: Path, *, cache: bool = True) -> PositionKind:
    """The kind for this model: its type's row, else its text model's row, else its config's keys."""
    table = _table(root, cache)
    release = table.get("transformers")
    found = config.get("text_config")
    text: dict[str, Any] = found if isinstance(found, dict) else {}
    for key in (model_type, text.get("model_type")):
        row = table["rows"].get(key) if isinstance(key, str) else None
        if row is not None:
            return PositionKind(row["kind"], f"transformers {release} {row['file']}:{row['line']}")
    for scope, label in ((config, "config.json"), (text, "config.json text_config")):
        for key in _ROPE_KEYS:
            if scope.get(key) is not None:
                return PositionKind("rotary", f"{label} sets {key}")
        if scope.get("alibi") is True:
            return PositionKind("alibi", f"{label} sets alibi")
    return PositionKind("unknown", f"{model_type!r} is not in data/position_kinds.json (transformers {release})")
