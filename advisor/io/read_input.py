"""Read a user-supplied JSON file (config.json, --env, --config) as a stranger's file: safely and with limits.

NOTE (issue 15): people point the advisor at configs and snapshots from strangers, often in CI on pull
requests. A FIFO or `/dev/zero` given as a file hung or read without bound; a UTF-16 file, deep nesting,
NaN or 1e400 crashed with exit 3. Every user file is therefore read here, once: only regular files, with a
size cap, opened without blocking, decoded as strict UTF-8, parsed with a nesting limit and no
non-finite numbers. Every failure is one `UsageError` line that names the file and what is wrong.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from advisor.errors import InputFileError, UsageError

__all__ = [
    "CONFIG_MAX_BYTES",
    "MAX_DEPTH",
    "SNAPSHOT_MAX_BYTES",
    "check_tree",
    "field_name",
    "path_kind",
    "printable",
    "read_json_file",
    "read_text_file",
]

CONFIG_MAX_BYTES = 16 * 1024 * 1024
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64  # real configs nest 3-4 levels; anything deeper is not a transformers config or a snapshot

_BOMS = (
    (b"\xef\xbb\xbf", "UTF-8 with a byte-order mark"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A JSON location as `a.b[3].c`, printable on one line whatever the keys hold."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part).encode("ascii", "backslashreplace").decode("ascii")
            text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
            out += ("." if out else "") + (text[:60] + "..." if len(text) > 60 else text)
    return out or "(top level)"


def printable(path: Path | str) -> str:
    """The path as the user typed it, safe for one line of stderr (no control characters, bounded)."""
    text = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= 200 else text[:100] + "..." + text[-60:]


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is longer than the operating system allows"
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link loop"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file: it does not exist"
    return exc.strerror or type(exc).__name__


def path_kind(path: Path) -> str:
    """'dir', 'file' (a regular file), 'missing' or 'other'; raise a one-line error when the name cannot be used.

    `Path.is_dir()` raises on ENAMETOOLONG on Python 3.11; this never does.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing"
        if exc.errno == errno.ENAMETOOLONG:
            raise UsageError(f"{printable(path)}: the name is longer than the operating system allows") from None
        raise UsageError(f"cannot use {printable(path)}: {_os_problem(exc)}") from None
    except ValueError:  # an embedded NUL byte
        raise UsageError(f"cannot use {printable(path)}: the name holds a NUL byte") from None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The file's bytes: a regular file only (checked before and after open), never blocking, at most `limit`."""
    shown = printable(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputFileError(what, shown, _os_problem(exc)) from None
    except ValueError:
        raise InputFileError(what, shown, "the name holds a NUL byte") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(what, shown, f"it is {_kind_of_mode(st.st_mode)}, not a regular file; give the path of a JSON file")
    if st.st_size > limit:
        raise InputFileError(what, shown, f"{st.st_size} bytes, more than the {limit // (1024 * 1024)} MiB limit")
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputFileError(what, shown, _os_problem(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputFileError(what, shown, "it is not a regular file")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise InputFileError(what, shown, _os_problem(exc)) from None
    finally:
        os.close(fd)
    if total > limit:
        raise InputFileError(what, shown, f"more than the {limit // (1024 * 1024)} MiB limit")
    return b"".join(chunks)


def _decode(data: bytes, what: str, shown: str) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputFileError(what, shown, f"encoded as {name}; save it as UTF-8 without a byte-order mark")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = f"not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); save it as UTF-8"
        raise InputFileError(what, shown, problem) from None


def _check_tree(value: Any, what: str, shown: str) -> None:
    """Iteratively: no nesting deeper than MAX_DEPTH, no non-finite number (1e400 parses as inf)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        node, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise InputFileError(what, shown, f"field {field_name(loc[:4])}[...]: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((v, (*loc, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputFileError(what, shown, f"field {field_name(loc)}: {node} is not a finite number")


def read_json_file(path: Path | str, *, what: str, limit: int = CONFIG_MAX_BYTES) -> Any:
    """Parse a user's JSON file; any problem is a one-line UsageError naming the file, the field and the fix.

    `what` names the file's role in messages ("config.json", "environment file", "config file").
    """
    path = Path(path)
    shown = printable(path)
    text = _decode(_read_bytes(path, what, limit), what, shown)
    try:
        value = json.loads(text)  # NaN/Infinity parse to floats; _check_tree names their field
    except json.JSONDecodeError as exc:
        raise InputFileError(what, shown, f"not JSON ({exc.msg} at line {exc.lineno}); fix or replace it") from None
    except ValueError:  # an integer literal longer than Python's int/str digit limit
        raise InputFileError(what, shown, "a number with thousands of digits; not a config") from None
    except RecursionError:
        raise InputFileError(what, shown, f"nested more than {MAX_DEPTH} levels deep; not a config") from None
    _check_tree(value, what, shown)
    return value


def check_tree(value: Any, *, what: str, path: Path | str) -> None:
    """The checks of `read_json_file` (depth, finite numbers) for a tree parsed from another format (issue 25)."""
    _check_tree(value, what, printable(path))


def read_text_file(path: Path | str, *, what: str, limit: int) -> str:
    """A user's text file read like a config: a regular file only, at most `limit` bytes, strict UTF-8 (issue 25:
    manifests hung on a FIFO, read /dev/zero until 2.6 GB and had no size cap)."""
    path = Path(path)
    return _decode(_read_bytes(path, what, limit), what, printable(path))
