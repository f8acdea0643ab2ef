"""Inference Advisor: how to load a Hugging Face transformers model on your hardware, proven.

probe -> Environment snapshot -> knowledge tables -> rules -> plan -> emit / smoke / report.
The public API is imported lazily, so child processes (`advisor.prove.smoke_worker`, `advisor.prove.bench_worker`)
do not pay for it.
"""

from __future__ import annotations

import os as _os
import sys as _sys

import _signal  # the C module: `signal` imports enum first, tens of milliseconds in which a Ctrl-C is a traceback


def _hold_sigint() -> object:
    """SIGINT held from the package's first line when it runs as the CLI (`python -m advisor` names itself "-m"
    while the package imports; the `advisor` script by its file name), released by advisor/__main__.py once the
    CLI is imported: a Ctrl-C in the first milliseconds then arrives as one KeyboardInterrupt there, never as a
    traceback from inside an import. The mask before it, or None where nothing was held (a library import)."""
    block = getattr(_signal, "pthread_sigmask", None)
    name = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    argv = list(getattr(_sys, "orig_argv", []))
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
    # only `-m advisor` itself: `-m advisor.prove.smoke_worker` (a child) must keep its Ctrl-C, and the mask
    # would pass to whatever it starts
    if block is None or not (module == "advisor" if name == "-m" else name.removesuffix(".exe") == "advisor"):
        return None
    return block(_signal.SIG_BLOCK, {_signal.SIGINT})


_HELD_MASK = _hold_sigint()

import importlib  # noqa: E402 - after the signal is held
from typing import TYPE_CHECKING, Any  # noqa: E402

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
