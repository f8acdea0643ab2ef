"""Helpers for the hostile-input tests: a per-call deadline, so a hang fails a test instead of stalling CI."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM also interrupts a blocking open/read)."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"ran past its {seconds} s deadline: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(name="deadline")
def deadline_fixture() -> Any:
    """The `deadline(seconds)` context manager, for tests that run several calls under one limit."""
    return deadline


@pytest.fixture
def guarded_cli(cli: Any) -> Any:
    """The in-process CLI with a 60 s deadline per call."""

    def run(*argv: str) -> tuple[int, str, str]:
        with deadline(60):
            result: tuple[int, str, str] = cli(*argv)
        return result

    return run
