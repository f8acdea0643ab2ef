"""The process environment changed for one block and put back after it, each variable as it was (set or unset).

The CLI runs in-process from tests and notebooks, so what a command sets (the offline switches, the quiet
logging switches) must not outlive it; the goldens recorder sets its own per case. One implementation for all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

__all__ = ["scoped_environ"]


@contextmanager
def scoped_environ(values: Mapping[str, str] | None = None, *, keep: Iterable[str] = ()) -> Iterator[None]:
    """Set `values` for the block; afterwards every name in `values` and `keep` (what the block itself may set)
    is as it was before: restored, or removed when it was unset."""
    names = {*(values or {}), *keep}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(values or {})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
