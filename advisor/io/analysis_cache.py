"""A small on-disk cache of analysis results that cost an import of torch/transformers to compute.

Building a model on the meta device to count its parameters, or importing a model class to read its
attention flags, takes seconds (most of it importing transformers). The answers depend only on the
config's content and the transformers release, so they are kept here as JSON, one file per key, under the
user cache directory (platformdirs), or `$ADVISOR_CACHE_DIR`.

Keys are (kind, hash of the content, transformers version, extra). Writes go to a temporary file and are
renamed into place, so concurrent writers never leave a torn entry (the last one wins, and both wrote the
same answer). Anything unreadable (a truncated file, foreign JSON, a read-only disk) is a miss: the caller
recomputes and the entry is rewritten. The cache never raises.

Issue 25: the folder is untrusted content on a trusted path (`advisor/io/cache_root.py`). Every folder and entry
below it is opened with O_NOFOLLOW relative to its parent, so a planted symlink is never read or written
through; an entry is read only when it is a regular file of at most ENTRY_MAX_BYTES, and its value must pass
the bounds of its kind (`advisor/io/cache_entries.py`) or it is a miss. A path that is not a folder is never
replaced, and nothing is replaced or removed in a folder the advisor did not create.

Off switch: `ADVISOR_NO_CACHE=1`, or the CLI's `--no-cache`, which travels down as a parameter (`use=False`;
`Knowledge.cache` for the rooms below the request), never as process or context state (issue 26).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from advisor import env as envvars
from advisor.io import cache_root

T = TypeVar("T")

__all__ = [
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "cache_dir",
    "cached",
    "content_hash",
    "enabled",
    "get",
    "put",
    "source_stamp",
]

CACHE_DIR_ENV = cache_root.CACHE_DIR_ENV
NO_CACHE_ENV = envvars.NO_CACHE
_FORMAT = "v1"  # bump when the entry layout changes; old entries are then simply never read
_KIND = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def cache_dir() -> Path:
    """`$ADVISOR_CACHE_DIR`, else the platform's user cache folder for the advisor."""
    return cache_root.cache_dir()


def enabled() -> bool:
    """False under `ADVISOR_NO_CACHE` (any value but '', '0', 'false', 'no')."""
    return (envvars.read(NO_CACHE_ENV) or "").strip().lower() in ("", "0", "false", "no")


def holds(kind: str) -> bool:
    """Whether the cache holds any entry of `kind`: a guess without a key, for advisor/__main__.py, which skips
    starting a worker whose answer is probably here (a wrong guess costs speed, never an answer)."""
    if not enabled():
        return False
    try:
        with os.scandir(cache_dir() / _FORMAT / kind) as entries:
            return any(True for _ in entries)
    except (OSError, ValueError):
        return False


def content_hash(content: Any) -> str:
    """SHA-256 of the canonical JSON of `content` (sorted keys), so key order in a config does not matter."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key(kind: str, content: Any, transformers: str | None, extra: str) -> dict[str, str | None]:
    if not _KIND.match(kind):
        raise ValueError(f"cache kind {kind!r} must be lower-case letters, digits and dashes")
    return {"kind": kind, "content": content_hash(content), "transformers": transformers, "extra": extra}


def _name(key: dict[str, str | None]) -> str:
    return f"{content_hash(key)}.json"


def get(kind: str, content: Any, *, transformers: str | None, extra: str = "", use: bool = True) -> Any | None:
    """The value stored for this key, or None on a miss (absent, corrupt, foreign, out of bounds, or cache off:
    `use=False`, the caller's explicit --no-cache)."""
    if not (use and enabled()):
        return None
    key = _key(kind, content, transformers, extra)
    name = _name(key)
    with cache_root.open_root(create=False) as root:
        if root is None:
            return None
        with _folder(root.fd, (_FORMAT, kind), create=False) as folder:
            if folder is None:
                return None
            try:
                raw = cache_root.read_entry(folder, name)
            except ValueError:  # a symlink, FIFO, device or oversized file: not ours, left alone
                return None
            if raw is None:
                return None
            value = _entry_value(raw, key)
            if value is _MISS:
                if root.owned:
                    _discard(folder, name)
                return None
            return value


_MISS = object()


def _entry_value(raw: bytes, key: dict[str, str | None]) -> Any:
    """The entry's value when it is this key's and within the bounds of its kind, else _MISS."""
    from advisor.io.cache_entries import valid_value

    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _MISS
    if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
        return _MISS
    return entry["value"] if valid_value(str(key["kind"]), entry["value"]) else _MISS


def put(kind: str, content: Any, value: Any, *, transformers: str | None, extra: str = "", use: bool = True) -> None:
    """Store a JSON-able `value` for this key, atomically; a failure to write (or `use=False`) is a no-op."""
    if not (use and enabled()):
        return
    key = _key(kind, content, transformers, extra)
    name = _name(key)
    data = json.dumps({"key": key, "value": value}).encode("utf-8")  # key order of values kept
    if len(data) > cache_root.ENTRY_MAX_BYTES:
        return
    with cache_root.open_root(create=True) as root:
        if root is None or not root.owned:  # not a folder, or one the advisor did not create: never written
            return
        with _folder(root.fd, (_FORMAT, kind), create=True) as folder:
            if folder is not None:
                _write(folder, name, data)


@contextlib.contextmanager
def _folder(parent: int, names: tuple[str, ...], *, create: bool) -> Iterator[int | None]:
    """The folder `parent/names...`, each step opened without following a symlink."""
    opened: list[int] = []
    try:
        fd: int | None = parent
        for name in names:
            fd = cache_root.open_dir(fd, name, create=create)
            if fd is None:
                break
            opened.append(fd)
        yield fd
    finally:
        for fd in opened:
            os.close(fd)


def _write(folder: int, name: str, data: bytes) -> None:
    """A temporary file in the entry's folder, renamed over the entry, unless that name is not a regular file."""
    try:
        existing = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    except OSError:
        return
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        return  # a symlink, FIFO or folder under an entry's name is left as it is
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o600, dir_fd=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError:  # ENOSPC, EROFS, EDQUOT...: no cache this time
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)


def _discard(folder: int, name: str) -> None:
    """Remove a corrupt entry: a regular file under an entry's name in the advisor's own folder."""
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=folder)


@cache
def source_stamp(fn: Callable[..., Any]) -> str:
    """A short hash of `fn`'s source, so an edited function never serves answers of its old version."""
    import inspect

    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # no source (a frozen build): the name alone
        source = ""
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
    return f"{name}:{hashlib.sha256(source.encode('utf-8')).hexdigest()[:16]}"


def cached(kind: str, fn: Callable[..., T], *args: Any, transformers: str | None, use: bool = True) -> T:
    """`fn(*args)` through the cache, for a function whose answer depends only on JSON-able `args` and the
    installed transformers release `transformers` (it may import transformers to compute it). None is never cached;
    `use=False` (--no-cache) computes and stores nothing."""
    tf = transformers
    extra = source_stamp(fn)
    hit = get(kind, list(args), transformers=tf, extra=extra, use=use)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    value = fn(*args)
    try:
        exact = value is not None and json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        exact = False
    if exact:  # only values that come back from JSON unchanged (no tuples, no objects)
        put(kind, list(args), value, transformers=tf, extra=extra, use=use)
    return value
