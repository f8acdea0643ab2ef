"""Child side of the isolation: a worker dies with the advisor, even when the advisor is killed with SIGKILL.

Issue 15: `kill -9` of `advisor smoke --all` left its smoke_worker running (it sits in its own process group, so
nothing else reaches it). On Linux the worker asks the kernel for SIGKILL when its parent dies (prctl
PR_SET_PDEATHSIG, which survives exec); elsewhere a daemon thread watches the parent pid. The parent's pid comes
in `ADVISOR_PARENT_PID`, so a parent that died before the request was made is noticed too. Standard library only:
this runs before anything heavy is imported.

NOTE: Linux sends the death signal when the parent *thread* that forked the child exits; the advisor starts its
children from the main thread, whose end is the process's end.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from advisor import env as envvars

__all__ = ["PARENT_ENV", "bind_to_parent"]

PARENT_ENV = envvars.PARENT_PID
_PR_SET_PDEATHSIG = 1


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    if os.getpgrp() == os.getpid():  # our own group (start_new_session): take whatever we started along
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(137)


def bind_to_parent() -> None:
    """Die when the advisor that started this process dies; a no-op when not started by the advisor."""
    text = (envvars.read(PARENT_ENV) or "")
    if not text.isdigit():
        return
    parent = int(text)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before prctl took effect
                    os._exit(137)
                return
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(137)
    threading.Thread(target=_watch, args=(parent,), name="advisor-lifeline", daemon=True).start()
