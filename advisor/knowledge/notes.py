"""The small tables the rules, the ranking and the model room read: which model types overflow in float16
(`model_notes.json`), what each quantization costs in speed and fidelity (`measurements/quantization.json`),
whether flex_attention compiled on a real CPU per torch release (`flex_cpu/torch-*.json`), and the shipped model
precomputation (`model_analysis.json`). Every one is read here, typed, and a bad one is a DataTableError (the
precomputation, a cache of what the model room can count itself, reads as empty instead).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from advisor.errors import DataTableError
from advisor.knowledge.loader import data_dir, load_table
from advisor.knowledge.schema import UNVERIFIED, RuntimeFact

__all__ = [
    "QuantizationRow", "QuantizationTable", "flex_cpu_records", "fp16_overflow_models", "precomputed_models",
    "quantization_table",
]


class _Fp16Overflow(RuntimeFact):
    model_type: str
    source: str


class _ModelNotes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    description: str
    fp16_overflow: list[_Fp16Overflow]


class QuantizationRow(BaseModel):
    """One quantization's measured speed relative to bf16 per workload, and its fidelity in words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantization: str
    relative_to_bf16: dict[str, float | None]
    sources: list[str]
    fidelity: str
    short: str


class QuantizationTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    description: str
    device: str
    model: str
    rows: list[QuantizationRow]
    dtype_fidelity: dict[str, str]
    dtype_short: dict[str, str]


@lru_cache(maxsize=4)
def fp16_overflow_models(root: str) -> dict[str, str]:
    """model_type -> the source that shows it overflows in float16 ("unverified: read, not run; ..." where no run
    of ours showed it)."""
    notes = load_table(Path(root) / "model_notes.json", _ModelNotes)
    return {row.model_type: row.source if row.reproduction else f"{UNVERIFIED}; {row.source}"
            for row in notes.fp16_overflow}


@lru_cache(maxsize=1)
def quantization_table() -> QuantizationTable:
    return load_table(data_dir() / "measurements" / "quantization.json", QuantizationTable)


def flex_cpu_records(root: Path) -> dict[str, dict[str, object]]:
    """torch version -> the record benchmarks/flex_cpu_compile.py wrote into data/flex_cpu/ on a real CPU."""
    records: dict[str, dict[str, object]] = {}
    for path in sorted((root / "flex_cpu").glob("torch-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            torch = Version(str(record["torch"]).split("+")[0])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataTableError(str(path), f"not a flex_cpu record ({exc})") from None
        if not isinstance(record, dict):
            raise DataTableError(str(path), "not a flex_cpu record (not an object)")
        record["file"] = f"data/flex_cpu/{path.name}"
        records[str(torch)] = record
    return records


def precomputed_models(file_name: str) -> dict[str, Any]:
    """The shipped model precomputation, or an empty one when the file is missing or unreadable (the model room
    then counts on the meta device)."""
    try:
        raw = json.loads((data_dir() / file_name).read_text(encoding="utf-8"))
    except (OSError, ValueError, DataTableError):
        return {}
    return raw if isinstance(raw, dict) else {}
