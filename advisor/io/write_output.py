"""The one output writer behind every `-o FILE` and `bench --plot FILE.png`.

A failed run must leave an existing output exactly as it was, and a run must respect what the path already is
(issue 18). What a path gets, by what it is now:

- `-` or `/dev/stdout`: standard output.
- An existing character or block device, FIFO or socket (or a `/dev/fd/N`, `/proc/PID/fd/N` link to one): written
  in place, with no temporary file and no rename. A FIFO is opened without blocking and retried until a reader
  opens it, for at most `ADVISOR_OUTPUT_WAIT` seconds (default 10); then exit 2. A socket is connected to.
- A symlink: resolved; its target is replaced atomically, with the temporary file in the target's directory.
- A regular file: written to a temporary file beside it, then renamed over it. It keeps its mode and, where
  permitted, its owner. A file without write permission (for root: no write bit at all) is refused unless
  `force` (`--force`).
- Any OSError (ENOSPC, EACCES, EROFS, ENAMETOOLONG, ...) becomes one `OutputFileError` line, exit 2, and the
  temporary file is removed.
- SIGINT, SIGTERM and SIGHUP during the write remove the temporary file, then act as they did before (handlers
  are installed only for the write and restored after). Temporary files are named `.advisor-tmp.NAME.HEX.tmp`;
  before writing, the writer removes such files of its own user, older than a minute, from the directory it
  writes to (what a SIGKILL left).

Test hook (not for users): `ADVISOR_WRITE_PAUSE=SECONDS` sleeps after the temporary file is created and half
written, so tests can signal a child inside the write window deterministically.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from types import FrameType
from typing import Any

from advisor import env as envvars
from advisor.errors import OutputFileError, UsageError

__all__ = [
    "PAUSE_ENV",
    "format_for_output",
    "STDOUT_NAMES",
    "TEMP_PREFIX",
    "WAIT_ENV",
    "Destination",
    "Kind",
    "check_output",
    "is_stdout",
    "resolve_output",
    "write_output",
]

STDOUT_NAMES = frozenset({"-", "/dev/stdout"})
TEMP_PREFIX = ".advisor-tmp."
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.advisor-tmp\..*\.[0-9a-f]{16}\.tmp$", re.DOTALL)
STALE_AFTER_S = 60.0
WAIT_ENV = envvars.OUTPUT_WAIT
PAUSE_ENV = envvars.WRITE_PAUSE
_DEFAULT_WAIT_S = 10.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_FD_DIR = re.compile(r"^/proc/(self|thread-self|\d+)(/task/\d+)?/fd$")

_FIXES = {
    errno.ENOSPC: "free some space or choose another path",
    errno.EDQUOT: "free some space or choose another path",
    errno.EFBIG: "choose another path",
    errno.EACCES: "choose a path you may write, or fix the permissions",
    errno.EPERM: "choose a path you may write, or fix the permissions",
    errno.EROFS: "the file system is mounted read-only; choose another path",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.ELOOP: "fix the symlink or choose another path",
    errno.ENOTDIR: "a part of the path is not a folder; choose another path",
    errno.EPIPE: "the reader went away before the output was written",
    errno.ECONNREFUSED: "no process is listening on the socket; start the reader first",
}


class Kind(Enum):
    """How a destination is written."""

    STDOUT = "stdout"
    IN_PLACE = "in place"  # devices, FIFOs, sockets: never replaced
    REPLACE = "replace"  # regular files (new or existing): temporary file + rename


@dataclass(frozen=True)
class Destination:
    """Where an output goes, decided from what the path is now."""

    shown: str  # the path as the user gave it, printable, for messages
    kind: Kind
    path: str  # IN_PLACE: as given (opened through links); REPLACE: the resolved real path
    existing: os.stat_result | None  # the file being replaced (REPLACE) or written (IN_PLACE)
    append: bool = False  # IN_PLACE through an fd link to a regular file (2>log): append, never overwrite


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    """True for the names that mean standard output (`-`, `/dev/stdout`); None (no -o) also means stdout."""
    return path is None or os.fspath(path) in STDOUT_NAMES


def _show(path: str) -> str:
    """The path for a one-line message: as given, or quoted when it holds a newline or other control character."""
    return path if path.isprintable() else ascii(path)


def _error(shown: str, exc: OSError) -> OutputFileError:
    problem = (exc.strerror or str(exc)).lower() if exc.errno is not None else str(exc)
    return OutputFileError(shown, problem, _FIXES.get(exc.errno or 0, "choose another path"))


def _through_fd_link(path: str) -> bool:
    """True when the path reaches an open file descriptor (/dev/stderr, /dev/fd/N, /proc/self/fd/N).

    Those are magic links: resolving them by name gives `pipe:[123]` or the file behind another process's stream,
    neither of which may be replaced.
    """
    p = os.path.abspath(path)
    for _ in range(40):
        parent = os.path.realpath(os.path.dirname(p))
        if _FD_DIR.match(parent):
            return True
        full = os.path.join(parent, os.path.basename(p))
        if not os.path.islink(full):
            return False
        try:
            p = os.path.normpath(os.path.join(parent, os.readlink(full)))
        except OSError:
            return False
    return False


def _read_only(path: str, st: os.stat_result) -> bool:
    """A file the user did not mean to be written: for root, no write bit for anyone; else no write access."""
    if os.geteuid() == 0:
        return not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    return not os.access(path, os.W_OK)


def resolve_output(path: str | os.PathLike[str], *, force: bool = False) -> Destination:
    """Decide how to write `path` and refuse what must not be written (directories, read-only files)."""
    given = os.fspath(path)
    shown = _show(given)
    if given in STDOUT_NAMES:
        return Destination(shown, Kind.STDOUT, given, None)
    if not given:
        raise UsageError("an empty output path; give a file name, or - for standard output")
    try:
        st: os.stat_result | None = os.stat(given)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _error(shown, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputFileError(shown, "it is a directory", "give a file name")
    if st is not None and not force and _read_only(given, st):
        raise OutputFileError(shown, f"{shown} is read-only", "pass --force to replace it, or choose another path")
    if st is not None and (not stat.S_ISREG(st.st_mode) or _through_fd_link(given)):
        return Destination(shown, Kind.IN_PLACE, given, st, append=stat.S_ISREG(st.st_mode))
    real = os.path.realpath(given)
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise OutputFileError(shown, f"folder {_show(parent)} does not exist", "create it or choose another path")
    return Destination(shown, Kind.REPLACE, real, st)


def check_output(path: str | os.PathLike[str] | None, *, force: bool = False) -> None:
    """Fail before any work when the output cannot be written (missing folder, read-only, no permission)."""
    if path is None:
        return
    dest = resolve_output(path, force=force)
    if dest.kind is not Kind.REPLACE:
        return
    parent = os.path.dirname(dest.path)
    try:
        read_only_fs = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    except OSError as exc:
        raise _error(dest.shown, exc) from None
    if read_only_fs:
        raise _error(dest.shown, OSError(errno.EROFS, os.strerror(errno.EROFS)))
    if not os.access(parent, os.W_OK):
        raise _error(dest.shown, OSError(errno.EACCES, os.strerror(errno.EACCES)))


def write_output(path: str | os.PathLike[str], content: str | bytes, *, force: bool = False) -> None:
    """Write `content` to `path` as its kind requires (see the module docstring); errors are OutputFileError."""
    dest = resolve_output(path, force=force)
    if dest.kind is Kind.STDOUT:
        _write_stdout(content)
        return
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if dest.kind is Kind.IN_PLACE:
            _write_in_place(dest, data)
        else:
            _replace(dest, data)
    except OSError as exc:
        raise _error(dest.shown, exc) from None


def _write_stdout(content: str | bytes) -> None:
    if isinstance(content, str):
        sys.stdout.write(content)
        return
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise UsageError("standard output takes only text here; give a file name for binary output")
    buffer.write(content)
    buffer.flush()


def _wait_s() -> float:
    text = envvars.read(WAIT_ENV)
    if text is None:
        return _DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{WAIT_ENV}={text!r} is not a number of seconds") from None
    return max(value, 0.0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_in_place(dest: Destination, data: bytes) -> None:
    """Devices, FIFOs and sockets: open what is there and write into it; nothing is created or renamed."""
    assert dest.existing is not None
    mode = dest.existing.st_mode
    if stat.S_ISSOCK(mode):
        _send_to_socket(dest, data)
        return
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_APPEND if dest.append else 0)
    fd = _open_fifo(dest, flags) if stat.S_ISFIFO(mode) else os.open(dest.path, flags)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _open_fifo(dest: Destination, flags: int) -> int:
    """Open a FIFO for writing without hanging: O_NONBLOCK fails with ENXIO while nobody reads, so retry, bounded."""
    wait = _wait_s()
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(dest.path, flags | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if time.monotonic() >= deadline:
                raise OutputFileError(
                    dest.shown, f"no process opened the FIFO for reading within {wait:g} s",
                    f"start the reader first, or set {WAIT_ENV}=SECONDS",
                ) from None
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)  # a reader is there: let writes wait for it to drain the pipe
        return fd


def _send_to_socket(dest: Destination, data: bytes) -> None:
    """A Unix socket cannot be open()ed: connect as a stream (or, if it is one, a datagram) client and send."""
    for sock_type in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock = socket.socket(socket.AF_UNIX, sock_type)
        with sock:
            sock.settimeout(_wait_s())
            try:
                sock.connect(dest.path)
            except OSError as exc:
                if exc.errno == errno.EPROTOTYPE:
                    continue
                raise
            sock.settimeout(None)
            sock.sendall(data)
            return


def _temp_name(directory: str, target: str) -> str:
    """`.advisor-tmp.NAME.HEX.tmp`, with NAME cut so the whole name fits NAME_MAX even when NAME itself nearly does."""
    stem = os.fsdecode(os.fsencode(os.path.basename(target))[:64])
    return os.path.join(directory, f"{TEMP_PREFIX}{stem}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _remove_stale(directory: str, keep: str) -> None:
    """Remove what an earlier killed run left: our own temporary files, older than a minute, in this folder."""
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMP_NAME.match(entry.name) or entry.path == keep:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and now - st.st_mtime > STALE_AFTER_S:
                os.unlink(entry.path)
        except OSError:
            continue


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_metadata(fd: int, existing: os.stat_result | None) -> None:
    """Give the new file the old one's owner (where permitted) and mode; a new file gets what open() would give."""
    if existing is None:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (existing.st_uid, existing.st_gid):
        for uid in (existing.st_uid, -1):
            try:
                os.fchown(fd, uid, existing.st_gid)
                break
            except PermissionError:
                continue
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # after chown, which may clear set-id bits


class _SignalWindow:
    """While open: SIGINT/SIGTERM/SIGHUP remove the temporary file, then act as the handler they replaced would."""

    def __init__(self) -> None:
        self.temp: str | None = None
        self._previous: dict[int, Any] = {}

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
            return
        for sig in _SIGNALS:
            old = signal.getsignal(sig)
            if old is None or old == signal.SIG_IGN:  # ignored (nohup) or set outside Python: leave alone
                continue
            self._previous[sig] = old
            signal.signal(sig, self._handle)

    def _restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.temp is not None:
            _unlink_quietly(self.temp)
        old = self._previous.get(signum, signal.SIG_DFL)
        self._restore()
        if callable(old):
            old(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt here
            raise KeyboardInterrupt  # a handler that returned: the write is still abandoned
        os.kill(os.getpid(), signum)  # SIG_DFL, now restored: end the process by the signal, as without us
        raise KeyboardInterrupt  # not reached for SIGTERM/SIGHUP/SIGINT under SIG_DFL


@contextlib.contextmanager
def _signal_window() -> Iterator[_SignalWindow]:
    """The write window: handlers installed on entry, the previous ones restored on exit, whatever happens."""
    window = _SignalWindow()
    window._install()
    try:
        yield window
    finally:
        window._restore()


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _pause_s() -> float:
    try:
        return float(envvars.read(PAUSE_ENV) or "0")
    except ValueError:
        return 0.0


def _replace(dest: Destination, data: bytes) -> None:
    """Temporary file in the target's folder, the old file's owner and mode, fsync, then one rename."""
    directory = os.path.dirname(dest.path)
    _remove_stale(directory, keep=dest.path)
    with _signal_window() as window:
        try:
            while True:
                window.temp = _temp_name(directory, dest.path)
                try:
                    fd = os.open(window.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                    break
                except FileExistsError:
                    continue
            with os.fdopen(fd, "wb") as handle:
                pause = _pause_s()
                if pause > 0:  # test hook: a deterministic window with a half-written temporary file
                    handle.write(data[: len(data) // 2])
                    handle.flush()
                    time.sleep(pause)
                    handle.write(data[len(data) // 2:])
                else:
                    handle.write(data)
                handle.flush()
                _copy_metadata(handle.fileno(), dest.existing)
                os.fsync(handle.fileno())
            os.replace(window.temp, dest.path)
            window.temp = None
        except BaseException:
            if window.temp is not None:
                _unlink_quietly(window.temp)
                window.temp = None
            raise



def format_for_output(given: str | None, output: str | os.PathLike[str] | None, formats: Sequence[str],
                      default: str) -> str:
    """The --format given, else the one the -o file's extension names (snap.json -> json), else `default`."""
    if given is not None:
        return given
    if output is not None and not is_stdout(output):
        suffix = os.path.splitext(os.fspath(output))[1].lower()
        named = {".md": "markdown", ".htm": "html", ".txt": "text"}.get(suffix, suffix.lstrip("."))
        if named in formats:
            return named
    return default
