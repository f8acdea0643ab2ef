"""The frame of a child that reads the installed transformers' own classes (`advisor.model.layers_worker`,
`advisor.knowledge.derive_worker`): one JSON payload on stdin, one JSON answer on stdout.

Importing transformers and its model classes prints and warns; none of that may reach stdout, which carries only
the answer. transformers is imported here, inside the call, so the worker module itself stays light.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["NO_TRANSFORMERS", "serve"]

NO_TRANSFORMERS = 3  # the exit code when transformers does not import here


def serve(answer: Callable[[Any], Any]) -> int:
    """`answer(payload)` with warnings off, transformers' logging at errors and anything printed sent to stderr;
    its JSON on stdout. 0, or NO_TRANSFORMERS."""
    payload = json.loads(sys.stdin.read() or "null")
    warnings.filterwarnings("ignore")
    with contextlib.redirect_stdout(sys.stderr):  # a class printing while it imports must not break the JSON
        try:
            import transformers

            transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        except ImportError:
            return NO_TRANSFORMERS
        value = answer(payload)
    json.dump(value, sys.stdout)
    return 0
