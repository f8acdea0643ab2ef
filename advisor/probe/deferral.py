"""Which kernel proofs run now, and which wait (issue 27).

A proof that needs a long compile (flex_attention: 15-25 s cold on an H100, docs/gpu/attention-kernels) runs
only where it can change an answer: with `advisor doctor --prove-all`, or when that kernel is a finalist of the
plan being made (advisor.prove.proofs runs it then). Every other time it reports "not proven yet". The cheap
proofs and a slow one run side by side in one bounded pool (advisor.probe.kernels.run_kernels).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["DEFERRED", "SLOW", "deferred", "prove_all", "proving_all"]

SLOW = ("flex_attention",)  # kernels whose first call compiles for seconds
DEFERRED = "not proven yet: `advisor doctor --prove-all`"
_ALL: contextvars.ContextVar[bool] = contextvars.ContextVar("advisor_prove_all", default=False)


@contextlib.contextmanager
def prove_all() -> Iterator[None]:
    """Run every kernel proof, the slow ones too (the CLI's `doctor --prove-all`)."""
    token = _ALL.set(True)
    try:
        yield
    finally:
        _ALL.reset(token)


def proving_all() -> bool:
    return _ALL.get()


def deferred(specs: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(the specs to run now, the slow ones left for later)."""
    if proving_all():
        return list(specs), []
    return [s for s in specs if s.kind not in SLOW], [s for s in specs if s.kind in SLOW]
