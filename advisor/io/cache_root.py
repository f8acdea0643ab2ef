"""The cache folder: a trusted path holding untrusted content (issue 25).

`$ADVISOR_CACHE_DIR` (else the platform's user cache folder) holds the analysis cache (`v1/KIND/HASH.json`) and the
measurement store (`measurements.sqlite`). Whatever is inside may have been planted: a CI cache restored from a pull
request, a shared home, a symlink left by another user. So:

- The path itself is the user's choice and may be a symlink (`~/.cache` on another disk); below it, nothing is
  followed: every folder and file is opened relative to the folder above it with `O_NOFOLLOW`, and a symlink, FIFO,
  device or socket is refused, never read, written through or removed.
- A path that exists and is not a folder is bad input: the CLI stops with exit 2 (`check_root`); the library
  treats it as no cache. Before, `recommend` deleted such a file and made a folder in its place.
- The advisor recognises its own folder by what is in it: nothing but the names it creates (`v1/`,
  `measurements.sqlite` with its `-wal`, `-shm`, `-journal` and `.corrupt-*` files), or nothing at all. No marker
  file is written, so a cache folder holds only entries. Any other folder is foreign (`ADVISOR_CACHE_DIR=$HOME`,
  a project folder): the advisor may read entries from it, but never writes, replaces or deletes anything there.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from advisor import env as envvars
from advisor.errors import UsageError

__all__ = [
    "CACHE_DIR_ENV",
    "ENTRY_MAX_BYTES",
    "Root",
    "cache_dir",
    "check_root",
    "is_ours",
    "open_dir",
    "open_root",
    "read_entry",
]

CACHE_DIR_ENV = envvars.CACHE_DIR
ENTRY_MAX_BYTES = 1024 * 1024  # the largest real entry (a torch probe) is a few KiB
_OWN_NAMES = ("v1", "measurements.sqlite", "measurements.sqlite-wal", "measurements.sqlite-shm",
              "measurements.sqlite-journal")
_OWN_PREFIXES = ("measurements.sqlite.corrupt-",)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0))


def cache_dir() -> Path:
    """`$ADVISOR_CACHE_DIR`, else the platform's user cache folder for the advisor."""
    override = envvars.read(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # a core dependency, but a hand-made environment may lack it: the XDG default then
        return Path(envvars.read(envvars.XDG_CACHE_HOME) or Path.home() / ".cache") / "inference-advisor"
    return Path(user_cache_dir("inference-advisor", appauthor=False))


def check_root(path: Path | None = None) -> None:
    """Refuse, with a one-line UsageError, a cache path that exists and is not a folder (the CLI's preflight)."""
    root = path if path is not None else cache_dir()
    try:
        st = os.stat(root)
    except (OSError, ValueError):  # missing (created on first write) or unreachable: the cache is simply not used
        return
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cache folder {_shown(root)} is not a folder; the advisor never replaces it: set "
                         f"{CACHE_DIR_ENV} to a folder (it is created if missing), or pass --no-cache")


def _shown(path: Path) -> str:
    from advisor.io.read_input import printable

    return printable(path)


@dataclass(frozen=True)
class Root:
    """An open cache folder: its descriptor, and whether the advisor may write, replace and delete in it."""

    path: Path
    fd: int
    owned: bool


def _is_own_name(name: str) -> bool:
    return name in _OWN_NAMES or name.startswith(_OWN_PREFIXES)


def is_ours(fd: int) -> bool:
    """True when the folder open at `fd` holds nothing but names the advisor creates (or nothing)."""
    try:
        return all(_is_own_name(name) for name in os.listdir(fd))
    except OSError:
        return False


@contextmanager
def open_root(*, create: bool, path: Path | None = None) -> Iterator[Root | None]:
    """The cache folder, open; created (0700) when `create` and missing. None when it cannot be
    used: missing (and not created), not a folder, or unreadable. Never raises an OSError."""
    root = path if path is not None else cache_dir()
    try:
        fd = os.open(root, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))  # the path itself may be a link
    except FileNotFoundError:
        fd = _create(root) if create else -1
    except (OSError, ValueError):
        fd = -1
    if fd < 0:
        yield None
        return
    try:
        yield Root(path=root, fd=fd, owned=is_ours(fd))
    finally:
        os.close(fd)


def _create(root: Path) -> int:
    try:
        os.makedirs(root, mode=0o700)
    except FileExistsError:  # made by a concurrent run, or a dangling link: open decides
        pass
    except (OSError, ValueError):
        return -1
    try:
        return os.open(root, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
    except (OSError, ValueError):
        return -1


def open_dir(parent: int, name: str, *, create: bool) -> int | None:
    """A folder below `parent`, never through a symlink; made (0700) when `create` and missing; None otherwise."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                continue
            except OSError:
                return None
        except OSError:  # ELOOP (a symlink), ENOTDIR (a file), EACCES: refused, left as it is
            return None
    return None


def read_entry(parent: int, name: str, limit: int = ENTRY_MAX_BYTES) -> bytes | None:
    """The bytes of a regular file below `parent` of at most `limit` bytes; None when absent. A symlink, a FIFO, a
    device or a file past the limit raises ValueError (the caller treats the entry as foreign)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise ValueError(f"{name} is a symbolic link") from None
        raise ValueError(f"{name} cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{name} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{name} is {st.st_size} bytes, more than the {limit}-byte limit")
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise ValueError(f"{name} cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{name} grew past the {limit}-byte limit")
    return data
