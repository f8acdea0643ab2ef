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
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.fileio import write_output

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


def read_position_kinds() -> dict[str, object]:
    """model_type -> {kind, file, line} for every model type of the installed transformers with a modeling file."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES, model_type_to_module_name

    models = Path(transformers.__file__).parent / "models"
    rows: dict[str, dict[str, object]] = {}
    undecided: list[str] = []
    for model_type in sorted(CONFIG_MAPPING_NAMES):
        module = model_type_to_module_name(model_type)
        path = models / module / f"modeling_{module}.py"
        if not path.is_file():
            continue  # config-only types (composite wrappers, tokenizers); SEQ001 reads their text_config's type
        found = classify(path.read_text(encoding="utf-8"))
        if found is None:
            undecided.append(model_type)
            continue
        kind, line = found
        rows[model_type] = {"kind": kind, "file": f"models/{module}/modeling_{module}.py", "line": line}
    return {"transformers": transformers.__version__, "rows": rows, "undecided": undecided}


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
