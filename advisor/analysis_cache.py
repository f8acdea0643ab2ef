"""A small on-disk cache of analysis results that cost an import of torch/transformers to compute.

Building a model on the meta device to count its parameters, or importing a model class to read its
attention flags, takes seconds (most of it importing transformers). The answers depend only on the
config's content and the transformers release, so they are kept here as JSON, one file per key, under the
user cache directory (platformdirs), or `$ADVISOR_CACHE_DIR`.

Keys are (kind, hash of the content, transformers version, extra). Writes go to a temporary file and are
renamed into place, so concurrent writers never leave a torn entry (the last one wins, and both wrote the
same answer). Anything unreadable (a truncated file, foreign JSON, a file where a folder should be, a
read-only disk) is a miss: the caller recomputes and the entry is rewritten. The cache never raises.

Off switch: `ADVISOR_NO_CACHE=1`, or the CLI's `--no-cache` (which uses `disabled()`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from functools import lru_cache, cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "cache_dir",
    "cached",
    "content_hash",
    "disabled",
    "enabled",
    "get",
    "put",
    "source_stamp",
    "transformers_version",
]

CACHE_DIR_ENV = "ADVISOR_CACHE_DIR"
NO_CACHE_ENV = "ADVISOR_NO_CACHE"
_FORMAT = "v1"  # bump when the entry layout changes; old entries are then simply never read
_KIND = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_off: contextvars.ContextVar[bool] = contextvars.ContextVar("advisor_cache_off", default=False)


def cache_dir() -> Path:
    """`$ADVISOR_CACHE_DIR`, else the platform's user cache folder for the advisor."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # a core dependency, but a hand-made environment may lack it: the XDG default then
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inference-advisor"
    return Path(user_cache_dir("inference-advisor", appauthor=False))


def enabled() -> bool:
    """False under `ADVISOR_NO_CACHE` (any value but '', '0', 'false', 'no') or inside `disabled()`."""
    if _off.get():
        return False
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() in ("", "0", "false", "no")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Neither read nor write the cache inside this block (the CLI's --no-cache)."""
    token = _off.set(True)
    try:
        yield
    finally:
        _off.reset(token)


@lru_cache(maxsize=1)
def transformers_version() -> str | None:
    """The installed transformers release, from its metadata: no import."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


def content_hash(content: Any) -> str:
    """SHA-256 of the canonical JSON of `content` (sorted keys), so key order in a config does not matter."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key(kind: str, content: Any, transformers: str | None, extra: str) -> dict[str, str | None]:
    if not _KIND.match(kind):
        raise ValueError(f"cache kind {kind!r} must be lower-case letters, digits and dashes")
    return {"kind": kind, "content": content_hash(content), "transformers": transformers, "extra": extra}


def _path(key: dict[str, str | None]) -> Path:
    return cache_dir() / _FORMAT / str(key["kind"]) / f"{content_hash(key)}.json"


def get(kind: str, content: Any, *, transformers: str | None, extra: str = "") -> Any | None:
    """The value stored for this key, or None on a miss (absent, corrupt, foreign, or cache off)."""
    if not enabled():
        return None
    key = _key(kind, content, transformers, extra)
    path = _path(key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError):
        _discard(path)
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
        _discard(path)
        return None
    return entry["value"]


def put(kind: str, content: Any, value: Any, *, transformers: str | None, extra: str = "") -> None:
    """Store a JSON-able `value` for this key, atomically; a failure to write is silently a no-op."""
    if not enabled():
        return
    key = _key(kind, content, transformers, extra)
    path = _path(key)
    data = json.dumps({"key": key, "value": value}).encode("utf-8")  # key order of values kept
    for _ in range(2):  # a second try after clearing a file that blocks a folder of the path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except (FileExistsError, NotADirectoryError):
            _clear_blocking_file(path.parent)
            continue
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
        return


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            return
        path.unlink()


def _clear_blocking_file(folder: Path) -> None:
    """A plain file where one of our folders belongs (a corrupted cache): remove it so the folder can exist."""
    root = cache_dir()
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            with contextlib.suppress(OSError):
                parent.unlink()
            return
        if parent == root or parent == parent.parent:
            return


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


def cached(kind: str, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` through the cache, for a function whose answer depends only on JSON-able `args` and the
    installed transformers (it may import transformers to compute it). None is never cached."""
    tf = transformers_version()
    extra = source_stamp(fn)
    hit = get(kind, list(args), transformers=tf, extra=extra)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    value = fn(*args)
    try:
        exact = value is not None and json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        exact = False
    if exact:  # only values that come back from JSON unchanged (no tuples, no objects)
        put(kind, list(args), value, transformers=tf, extra=extra)
    return value
