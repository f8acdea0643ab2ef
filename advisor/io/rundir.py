"""Temporary files of one advisor run live in ONE folder, removed on exit and swept by the next run if left.

Issue 15: every signal left an `/tmp/advisor-smoke-*` folder behind, and SIGKILL cannot be caught. So each run gets
`$TMPDIR/advisor-<uid>/run-<pid>-<random>` (created 0700 in a 0700 folder that must be ours and not a symlink), its
temporary folders go inside it, it is removed at exit, and each new run first removes the run folders whose owner
pid is gone. A reused pid only delays the sweep of its folder until that process ends.

Issue 25: the sweep ran only when a run needed a temporary folder, so a SIGKILLed `smoke` left its folder until
the next smoke or bench. Every CLI command now sweeps first (`sweep_stale`, a quiet no-op when the base folder
does not exist or is not this user's), and every temporary folder of every command lives in the run folder
(`smoke --runtime onnxruntime` used a bare `advisor-onnx-*` in $TMPDIR, never swept).
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from advisor.errors import UsageError

__all__ = ["base_dir", "run_dir", "sweep", "sweep_stale", "temp_dir"]

_RUN: Path | None = None


def base_dir() -> Path:
    """`$TMPDIR/advisor-<uid>`, private to this user; refuse one that another user or a symlink holds."""
    base = Path(tempfile.gettempdir()) / f"advisor-{os.getuid()}"
    try:
        base.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UsageError(f"{base} is not a private folder of this user (another owner, a symlink or open "
                         "permissions); remove it or set TMPDIR elsewhere")
    return base


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's pid now: ours is gone, but leave it to be safe
        return True
    return True


def sweep(base: Path | None = None) -> list[Path]:
    """Remove the run folders of advisor runs that are no longer alive; return what was removed."""
    base = base or base_dir()
    removed = []
    for entry in base.glob("run-*-*"):
        pid_text = entry.name.split("-")[1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def sweep_stale() -> None:
    """The sweep, at the start of every command; silent, and never creating or refusing the base folder."""
    base = Path(tempfile.gettempdir()) / f"advisor-{os.getuid()}"
    try:
        info = os.lstat(base)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
        try:
            sweep(base)
        except OSError:
            pass


def _remove_run() -> None:
    global _RUN
    if _RUN is not None and _RUN.name.startswith(f"run-{os.getpid()}-"):  # not a forked child's copy
        shutil.rmtree(_RUN, ignore_errors=True)
        _RUN = None


def run_dir() -> Path:
    """This process's run folder, made (after a sweep) on first use and removed at exit."""
    global _RUN
    if _RUN is None or not _RUN.is_dir():
        base = base_dir()
        sweep(base)
        _RUN = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=base))
        atexit.register(_remove_run)
    return _RUN


@contextmanager
def temp_dir(prefix: str) -> Iterator[str]:
    """A temporary folder inside the run folder, removed when the block ends (an exception or signal included)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=run_dir())
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
