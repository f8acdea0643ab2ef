"""Read how each model type of the importable transformers encodes positions, from its modeling file as text.

Runs inside the release being read: by scripts/generate_position_kinds.py into data/position_kinds.json, and by
`advisor.knowledge.derive_worker info` for an installed release newer than that table. The table is read in
`advisor.knowledge.positions`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["classify", "read_position_kinds"]

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
