"""Inference Advisor: how to load a Hugging Face transformers model on your hardware, proven.

probe -> Environment snapshot -> knowledge tables -> rules -> plan -> emit / smoke / report.
The public API is imported lazily, so child processes (`advisor.prove.smoke_worker`, `advisor.prove.bench_worker`)
do not pay for it.
"""

from __future__ import annotations

import signal
import sys


def _hold_sigint_for_the_cli() -> frozenset[signal.Signals] | None:
    """`python -m advisor` runs this file before `__main__`: a Ctrl-C during its imports (typing, importlib) was a
    traceback (CI, stop 36). Only while Python locates `-m advisor` (argv[0] is "-m"), SIGINT is held from here;
    `advisor.__main__` restores the mask kept here once the CLI is imported. Library imports are left alone."""
    orig = getattr(sys, "orig_argv", [])
    block = getattr(signal, "pthread_sigmask", None)
    if block is None or sys.argv[:1] != ["-m"] or "-m" not in orig or orig[orig.index("-m") + 1:][:1] != ["advisor"]:
        return None
    return frozenset(block(signal.SIG_BLOCK, {signal.SIGINT}))


SIGINT_MASK_BEFORE_CLI = _hold_sigint_for_the_cli()

import importlib  # after SIGINT is held
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.api import CheckResult, check, doctor, matrix, probe, recommend, target_environment
    from advisor.facts import Environment
    from advisor.plan.options import Recommendation

__all__ = [
    "CheckResult",
    "Environment",
    "Recommendation",
    "check",
    "doctor",
    "load",
    "matrix",
    "probe",
    "recommend",
    "target_environment",
]

__version__ = "0.1.0"

_LAZY = {
    "CheckResult": "advisor.api",
    "check": "advisor.api",
    "doctor": "advisor.api",
    "matrix": "advisor.api",
    "probe": "advisor.api",
    "recommend": "advisor.api",
    "target_environment": "advisor.api",
    "Environment": "advisor.facts",
    "Recommendation": "advisor.plan.options",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")


def load(model: str, **kwargs: Any) -> Any:
    """Plan, smoke-test with fallback, then load: returns (model, tokenizer, report)."""
    from advisor.prove.smoke import load as _load

    return _load(model, **kwargs)


def __dir__() -> list[str]:
    """The public API (issue 31: dir(advisor) listed `Any` and `importlib`, not the lazy `recommend`)."""
    return sorted([*__all__, "__version__"])
