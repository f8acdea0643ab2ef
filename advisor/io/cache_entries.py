"""Bounds on a value read back from the analysis cache: an entry is input like any other (issue 25).

A well-formed but absurd entry (a negative parameter count, negative memory, a 1e300 peak) was used as is, because
the cache trusted what it had written. Every entry's value now passes the bounds a fresh input passes before it is
served; anything else is a miss, recomputed and rewritten. Two layers:

- every value: at most MAX_DEPTH levels, every number a finite one in [0, MAX_NUMBER] (counts, bytes and seconds
  are never negative; 2**60 is far above any memory or parameter count, as in the snapshot bounds), every string at
  most MAX_STRING characters and free of control characters;
- known kinds: their shape (a parameter count is [total, quantizable] or [total, quantizable, note]; attention
  support maps implementation names to booleans). The callers validate the rest with their own models
  (`TorchInfo`, `KernelRun`, `SimResult`) and recompute on failure.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StringConstraints, TypeAdapter, ValidationError

__all__ = ["MAX_NUMBER", "valid_value"]

MAX_DEPTH = 16
MAX_NUMBER = 1 << 60
MAX_STRING = 10_000
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_Count = Annotated[StrictInt, Field(ge=0, le=MAX_NUMBER)]
_Note = Annotated[str, StringConstraints(max_length=2_000)]
_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/\-]{1,100}$")]
_KINDS: dict[str, TypeAdapter[Any]] = {
    "param-count": TypeAdapter(tuple[_Count, _Count] | tuple[_Count, _Count, _Note | None]),
    "attention-support": TypeAdapter(Annotated[dict[_Name, StrictBool], Field(max_length=64)]),
}


def _within_bounds(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, bool) or node is None:
            continue
        if isinstance(node, (int, float)):
            if not (math.isfinite(node) and 0 <= node <= MAX_NUMBER):
                return False
        elif isinstance(node, str):
            if len(node) > MAX_STRING or _CONTROL.search(node):
                return False
        elif isinstance(node, dict):
            stack.extend((k, depth + 1) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        else:
            return False
    return True


def valid_value(kind: str, value: Any) -> bool:
    """True when a cached `value` of `kind` is within the bounds of a fresh answer."""
    if not _within_bounds(value):
        return False
    adapter = _KINDS.get(kind)
    if adapter is None:
        return True
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True
