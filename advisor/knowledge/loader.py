"""Where the data tables are, and how one is read: validated, and a DataTableError when it is bad.

The base of `advisor.knowledge`: every table module reads its file through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from advisor import env as envvars
from advisor.errors import DataTableError

__all__ = ["DATA_DIR_ENV", "data_dir", "load_table"]

M = TypeVar("M", bound=BaseModel)

DATA_DIR_ENV = envvars.DATA_DIR


def data_dir() -> Path:
    """`$ADVISOR_DATA_DIR` (a maintainer's copy of the tables, e.g. one without the newest release), else
    `advisor/data` inside an installed wheel, else the repository's top-level `data/`."""
    override = envvars.read(DATA_DIR_ENV)
    if override:
        root = Path(override).expanduser()
        if not (root / "capabilities.json").is_file():
            raise DataTableError(str(root), f"{DATA_DIR_ENV} names no data directory (no capabilities.json)")
        return root
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "data", package.parent / "data"):
        if (candidate / "capabilities.json").is_file():
            return candidate
    raise DataTableError(str(package / "data"), "the data directory is missing")


def load_table(path: Path, model: type[M]) -> M:
    """One table, validated by its row model; any problem is a DataTableError naming the file and the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataTableError(str(path), "file not found") from None
    except json.JSONDecodeError as exc:
        raise DataTableError(str(path), f"not valid JSON ({exc})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DataTableError(str(path), f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
