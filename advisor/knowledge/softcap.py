"""What each transformers release does with attention logit softcapping on a flash-attn that lacks it, from
`data/softcap.json` (issue 28: silent numerical changes are facts too).

Why: Gemma-2 caps its attention logits; flash-attn gained the `softcap` argument in 2.6.0. Depending on the release,
an older flash-attn makes transformers raise at the first forward, refuse, or drop the cap and run with other
numbers than the model's, which no error reveals.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from advisor.knowledge import version_matches
from advisor.knowledge.loader import data_dir, load_table
from advisor.knowledge.schema import UNVERIFIED, RuntimeFact

__all__ = ["SoftcapRow", "SoftcapTable", "softcap_table"]


class SoftcapRow(RuntimeFact):
    covers: str
    behaviour: Literal["raises", "drops", "refuses"]
    message: str
    source: str

    def cite(self) -> str:
        if self.reproduction is not None:
            return f"executed: {self.reproduction.output}; {self.source}"
        return f"{UNVERIFIED}; {self.source}"


class SoftcapTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int
    description: str
    flash_attn_min: str
    flash_attn_source: str
    rows: tuple[SoftcapRow, ...]

    def at(self, transformers: str | None) -> SoftcapRow | None:
        """The row covering this release; None for a release outside the table (no claim)."""
        return next((r for r in self.rows if version_matches(transformers, r.covers)), None)


def softcap_table() -> SoftcapTable:
    return _load(data_dir() / "softcap.json")


@lru_cache(maxsize=4)
def _load(path: Path) -> SoftcapTable:
    return load_table(path, SoftcapTable)
