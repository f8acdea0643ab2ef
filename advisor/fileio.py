"""Atomic writes: a failed run must leave an existing output file exactly as it was."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from advisor.errors import UsageError

__all__ = ["write_atomic", "check_writable"]


def check_writable(path: Path) -> None:
    """Fail before any work when the output cannot be written (missing folder, no permission)."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist; create it or choose another -o path")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory; give a file name with -o")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied; choose another -o path")


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` in one step."""
    check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
