"""How a model encodes positions, which decides what a sequence past `max_position_embeddings` does.

A learned table (`nn.Embedding(config.max_position_embeddings, ...)`: GPT-2, OPT, BERT, Whisper, BART) raises
`IndexError: index out of range in self` past its last row. Rotary, ALiBi, relative-bucket and self-extending
sinusoidal positions are computed, so the model runs there and only degrades. The kind per model type is read
from each modeling file of a transformers release by scripts/generate_position_kinds.py into
data/position_kinds.json (with `read_position_kinds` below, which also reads a newer installed release: see
`advisor.knowledge.installed`); a config that the table does not cover falls back to its own keys (`rope_theta`,
`rope_scaling`, `rope_parameters`, `alibi`), and else the kind stays unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

# The config fields transformers sizes a text position table with (vision models size theirs from the image).
_POSITION_FIELDS = r"(?:max_position_embeddings|n_positions|max_target_positions|max_source_positions|n_ctx)"
_SUBCLASS = re.compile(r"^class (\w+)\((?:nn|torch\.nn)\.Embedding\)", re.MULTILINE)
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rotary", re.compile(r"RotaryEmbedding\(|apply_rotary_pos_emb|rotary_emb")),
    ("alibi", re.compile(r"alibi", re.IGNORECASE)),
    ("relative", re.compile(r"relative_attention_bias|relative_attention_num_buckets")),
    # A sinusoidal table that is an nn.Module (XGLM, M2M100, Speech2Text) recomputes itself for a longer input;
    # one that subclasses nn.Embedding (Marian) is a fixed table and is caught as learned above.
    ("sinusoidal", re.compile(r"SinusoidalPositionalEmbedding\(")),
)


def _learned(text: str) -> re.Pattern[str]:
    """An `nn.Embedding` (or a subclass defined in the file) sized by a position field of the config."""
    callees = ["nn\\.Embedding", "torch\\.nn\\.Embedding", *(re.escape(n) for n in _SUBCLASS.findall(text))]
    return re.compile(rf"(?:{'|'.join(callees)})\(\s*(?:config\.|self\.|text_config\.)?{_POSITION_FIELDS}\b")


def classify(text: str) -> tuple[str, int] | None:
    """(kind, 1-based line) of the first line that decides the position encoding, or None."""
    lines = text.splitlines()
    learned = _learned(text).search(text)  # over the whole text: the call often spans lines
    if learned is not None:
        return "learned", text.count("\n", 0, learned.start()) + 1
    for kind, pattern in _KINDS:
        for number, line in enumerate(lines, 1):
            if pattern.search(line):
                return kind, number
    return None


def read_position_kinds() -> dict[str, Any]:
    """model_type -> {kind, file, line} for every model type of the importable transformers with a modeling file
    (it imports the auto mapping's names only; each modeling file is read as text)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES, model_type_to_module_name

    models = Path(transformers.__file__).parent / "models"
    rows: dict[str, dict[str, object]] = {}
    undecided: list[str] = []
    for model_type in sorted(CONFIG_MAPPING_NAMES):
        module = model_type_to_module_name(model_type)
        path = models / module.replace(".", "/") / f"modeling_{module.split('.')[-1]}.py"
        if not path.is_file():
            continue  # config-only types (composite wrappers, tokenizers); SEQ001 reads their text_config's type
        found = classify(path.read_text(encoding="utf-8"))
        if found is None:
            undecided.append(model_type)
            continue
        kind, line = found
        rows[model_type] = {"kind": kind, "file": f"models/{module}/modeling_{module}.py", "line": line}
    return {"transformers": transformers.__version__, "rows": rows, "undecided": undecided}


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


@lru_cache(maxsize=4)
def _table(root: Path) -> dict[str, Any]:
    """The shipped table, or the installed release's own reading where that release is newer than it."""
    path = root / "position_kinds.json"
    table: dict[str, Any] = (dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file()
                             else {"transformers": None, "rows": {}})
    from advisor.knowledge.installed import installed, is_newer, release_info

    here = installed()
    if here is not None and table.get("transformers") and is_newer(here.version, table["transformers"]):
        info = release_info(here)
        if info is not None and isinstance(info.get("positions"), dict):
            return dict(info["positions"])
    return table


def position_kind(model_type: str, config: dict[str, Any], root: Path) -> PositionKind:
    """The kind for this model: its type's row, else its text model's row, else its config's keys."""
    table = _table(root)
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
