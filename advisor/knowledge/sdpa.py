"""torch's limits of each fused SDPA kernel, per torch release (data/sdpa_backends.json).

scaled_dot_product_attention always has its math kernel; whether it runs flash, memory-efficient or cuDNN is
decided by torch's sdp_utils.cpp. scripts/check_sdpa_constraints.py reads each torch release's own wheel (the
warning text compiled into libtorch_cuda.so, the inline checks of sdp_utils_cpp.h) into each row's `checked`,
so a limit here is sourced for the releases listed there, and unverified for any other. No row is executed (the
kernels need a CUDA GPU), so every row is `verified: false` and its citation says "read, not run" (issue 28).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from advisor.errors import DataTableError
from advisor.facts import ComputeCapability
from advisor.knowledge.schema import UNVERIFIED, provenance_problem


@dataclass(frozen=True)
class SdpaLimit:
    backend: str
    constraint: str
    value: Any  # the row's value, or the release's extracted value (a compute-capability range)
    checked_at: str | None  # the torch release whose wheel showed it (same major.minor), None: not checked
    where: str  # "libtorch_cuda.so" / "sdp_utils_cpp.h:260" of that release, else the pytorch main source
    executed: bool = False  # the row cites a reproduction (a run of the kernel), not only its wheel's text

    @property
    def verified(self) -> bool:
        """Read in a wheel of this torch's minor (the row's `checked`)."""
        return self.checked_at is not None

    def cite(self) -> str:
        if self.checked_at is None:
            return f"unverified for this torch; {self.where}"
        return f"torch {self.checked_at} {self.where}" + ("" if self.executed else f", {UNVERIFIED}")


@lru_cache(maxsize=4)
def _rows(root: Path) -> tuple[dict[str, Any], ...]:
    rows = tuple(json.loads((root / "sdpa_backends.json").read_text(encoding="utf-8"))["rows"])
    for row in rows:
        problem = provenance_problem(row)
        if problem:
            raise DataTableError(str(root / "sdpa_backends.json"), f"{row['backend']} {row['constraint']}: {problem}")
    return rows


def _minor(version: str) -> tuple[int, int] | None:
    try:
        release = Version(version.split("+")[0]).release
    except InvalidVersion:
        return None
    return (release[0], release[1] if len(release) > 1 else 0)


def sdpa_limit(root: Path, backend: str, constraint: str, torch: str | None) -> SdpaLimit | None:
    """The row for this torch: the release checked with the same major.minor (exact first), else unverified."""
    row = next((r for r in _rows(root) if r["backend"] == backend and r["constraint"] == constraint), None)
    if row is None:
        return None
    checked = [c for c in row.get("checked", []) if c.get("holds")]
    want = _minor(torch) if torch else None
    same = [c for c in checked if want is not None and _minor(c["torch"]) == want]
    exact = [c for c in same if torch is not None and c["torch"] == torch.split("+")[0]]
    hit = (exact or same or [None])[0]
    if hit is None:
        newest = max(checked, key=lambda c: Version(c["torch"]), default=None)  # the value, but unverified
        value = newest.get("value", row["value"]) if newest else row["value"]
        return SdpaLimit(backend, constraint, value, None, row["source"])
    where = hit["found"][0].split(": ")[0].replace("torch/lib/", "").replace("torch/include/", "")
    return SdpaLimit(backend, constraint, hit.get("value", row["value"]), hit["torch"], where,
                     row.get("reproduction") is not None)


def sm_range(limit: SdpaLimit) -> tuple[ComputeCapability, ComputeCapability] | None:
    """[80, 121] -> (8.0, 12.1): the `smNN` numbers of the warning text as compute capabilities."""
    if not isinstance(limit.value, list) or len(limit.value) != 2:
        return None
    low, high = (ComputeCapability(major=n // 10, minor=n % 10) for n in limit.value)
    return low, high
