"""Where a release dequantizes a pre-quantized checkpoint instead of refusing it (`data/dequant_fallbacks.json`).

Why: issue 28's audit found fallbacks treated as failures. transformers 5.x loads an FP8 checkpoint on a machine
without a GPU, or on one below compute capability 8.9, by dequantizing it to bf16 with a warning: the load works at
about twice the weight memory. That is a plan with a larger figure and a warning, not a rejection.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from advisor.facts import ComputeCapability
from advisor.knowledge import version_matches
from advisor.knowledge.loader import data_dir, load_table

__all__ = ["Fallback", "dequantizes"]


class Fallback(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method_key: str
    covers: str
    min_cc: str
    to: str
    still_needs: tuple[str, ...]  # the distributions the release still checks on the dequantizing path
    message: str
    source: str
    reproduction: str | None = None
    verified: bool

    def cite(self) -> str:
        """The release's file and lines (the source's first clause), and the run that showed it."""
        where = self.source.split(" (")[0]
        ran = f"; executed: {self.reproduction}" if self.reproduction else ""
        return f"{where}{ran}" if self.verified else f"unverified: {where}"


class _Table(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    description: str
    rows: tuple[Fallback, ...]


def dequantizes(method_key: str, transformers: str | None, weakest_cc: ComputeCapability | None,
                on_gpu: bool) -> Fallback | None:
    """The fallback this release takes for this method on this device, or None where it loads quantized or
    refuses (`weakest_cc` None on a GPU: unknown, so no claim)."""
    for row in _load(data_dir() / "dequant_fallbacks.json").rows:
        if row.method_key != method_key or not version_matches(transformers, row.covers):
            continue
        if not on_gpu or (weakest_cc is not None and weakest_cc < ComputeCapability.parse(row.min_cc)):
            return row
    return None


@lru_cache(maxsize=4)
def _load(path: Path) -> _Table:
    return load_table(path, _Table)
