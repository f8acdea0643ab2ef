"""SIGTERM and SIGHUP unwind the advisor like Ctrl-C does, so children are killed and temporary folders removed.

Issue 15: SIGTERM left a smoke_worker running and its temporary folder behind, because the default action ends the
process without running any `finally`. `handled()` turns SIGTERM and SIGHUP into an `Interrupted` exception (SIGINT
is already KeyboardInterrupt): `isolation.run_child` then kills the child's process group, `rundir.temp_dir`
removes its folder, and the CLI exits 128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP). Installed by
the CLI only: a library must not take over its host's signals.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupted", "handled"]

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A terminating signal arrived; a BaseException so that `except Exception` blocks do not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in _SIGNALS:  # one is enough: a second must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Interrupted; the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
