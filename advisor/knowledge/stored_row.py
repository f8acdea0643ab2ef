"""What a row of the local measurement store may hold, and how a SQLite failure is told apart (issue 25).

The store lives in the cache folder, whose content is untrusted: a row written by hand can hold `inf`, `1e300`, a
negative spread or a name with control characters, and before these bounds `recommend` ranked by it and printed
`infx` / `nanx`. A row is used only when every column passes `StoredRow`; the others are skipped with a note.
The same bounds apply before `tune` writes.

A SQLite error is corruption only when SQLite says so (SQLITE_CORRUPT, SQLITE_NOTADB). A full disk (SQLITE_FULL),
an I/O error (SQLITE_IOERR: EFBIG past RLIMIT_FSIZE, EDQUOT, EIO) or a read-only file system (SQLITE_READONLY) is a
write error: the store is kept as it is. Before, a full disk during `tune` made a healthy store count as corrupt
and moved its rows aside.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["MAX_THROUGHPUT", "StoredRow", "is_busy", "is_corrupt"]

MAX_THROUGHPUT = 1e9  # tokens/s: three orders of magnitude above an H100's prefill of a small model
MIN_THROUGHPUT = 1e-6  # a ratio of two stored values stays a finite number

_Text = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$")]
_Date = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+\-Z]{0,30})?$")]


def _throughput(value: float) -> float:
    if value != 0 and not MIN_THROUGHPUT <= value <= MAX_THROUGHPUT:
        raise ValueError(f"must be 0 or between {MIN_THROUGHPUT:g} and {MAX_THROUGHPUT:g}")
    return value


class StoredRow(BaseModel):
    """One row as read from (or about to be written to) the SQLite file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: _Text
    compute_capability: _Text
    driver: _Text
    torch: _Text
    transformers: _Text
    attention_kernels: _Text
    model_type: _Text
    shape: _Text
    workload: _Text
    candidate: _Text
    metric: _Text
    value: Annotated[float, Field(allow_inf_nan=False, ge=0), AfterValidator(_throughput)]
    spread: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1)] | None = None
    measured_at: _Date
    run: _Text
    layers: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = None


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    return code & 0xFF if isinstance(code, int) else None


def is_corrupt(exc: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB (by message before Python 3.11)."""
    code = _code(exc)
    if code is not None:
        return code in (11, 26)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another process holds the store."""
    code = _code(exc)
    return code in (5, 6) if code is not None else "locked" in str(exc).lower()


def row_problem(row: dict[str, Any]) -> str | None:
    """Why `row` is out of bounds (its first field and problem), or None."""
    from pydantic import ValidationError

    try:
        StoredRow.model_validate(row)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None
