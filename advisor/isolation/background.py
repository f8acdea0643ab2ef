"""Run one call in a background thread with the caller's context (issue 14).

The probe of `recommend` mostly waits on child processes (import checks), while describing a new config
imports transformers in Python: the two overlap. The call runs in a copy of the caller's context (contextvars),
so whatever the caller set there holds inside it too; --no-cache itself travels as a parameter (issue 26).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Pending", "in_background"]

T = TypeVar("T")


class Pending(Generic[T]):
    """A call running in a thread; `result()` waits for it and returns its value or raises its exception."""

    def __init__(self, fn: Callable[..., T], *args: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=lambda: context.run(self._call, fn, *args), daemon=True)
        self._thread.start()

    def _call(self, fn: Callable[..., T], *args: object) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def in_background(fn: Callable[..., T], *args: object) -> Pending[T]:
    """Start `fn(*args)` now; collect it with `.result()`."""
    return Pending(fn, *args)
