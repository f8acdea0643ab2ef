"""Inference Advisor: how to load a Hugging Face transformers model on your hardware, proven.

probe -> Environment snapshot -> knowledge tables -> rules -> plan -> emit / smoke / report.
"""

from __future__ import annotations

from typing import Any

from advisor.api import CheckResult, check, doctor, matrix, probe, recommend, target_environment
from advisor.facts import Environment
from advisor.plan import Recommendation

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


def load(model: str, **kwargs: Any) -> Any:
    """Plan, smoke-test with fallback, then load: returns (model, tokenizer, report)."""
    from advisor.smoke import load as _load

    return _load(model, **kwargs)
