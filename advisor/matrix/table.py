"""`advisor matrix` as people read it: every implementation a column (FlashAttention-4 included), rows sorted by
model type, optionally filtered, and the stored release that answers named when it is not the one asked for.

NOTE: issue 14 item 9 - `--transformers 4.99.0` silently showed 4.57.6, and FA4 had no column.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence

from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field

from advisor.candidate import ATTENTION_IMPLS
from advisor.errors import UsageError
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import AttentionSupportTable

__all__ = ["MatrixRow", "MatrixView", "matrix_view", "filter_model_types", "IMPLS"]

IMPLS = ATTENTION_IMPLS
FA4_SINCE = Version("5.4")  # tables without an executed FA4 column: `_supports_flash_attn` from 5.4 (issue 28)


class MatrixRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    model_type: str
    class_name: str = Field(alias="class")
    eager: bool
    sdpa: bool
    flash_attention_2: bool
    flash_attention_3: bool
    flash_attention_4: bool
    flex_attention: bool


class MatrixView(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    transformers: str = Field(description="The release whose declarations the rows show.")
    requested: str | None = Field(description="The release asked for with --transformers (None: the installed one).")
    answered_by: str = Field(description="Which release answers, and why (or where the rows come from).")
    source: str = Field(description="The file or installed package the rows were read from.")
    architectures: list[MatrixRow]
    skipped: list[str] = Field(default_factory=list)
    facts_source: str | None = Field(None, description="Where the rows came from when not from the shipped tables.")


def filter_model_types(names: Sequence[str], wanted: Sequence[str], release: str | None = None) -> list[str]:
    """The names matching any of `wanted` (exact or shell pattern, case-insensitive); none matching is a usage error,
    and so is an exact name absent from `release` (issue 31: `--model-type qwen3` on 4.40.2 was dropped unsaid)."""
    if not wanted:
        return list(names)
    keep = [n for n in names if any(fnmatch.fnmatch(n.lower(), w.lower()) for w in wanted)]
    lower = {n.lower() for n in names}
    for w in wanted:
        if release is not None and not any(ch in w for ch in "*?[") and w.lower() not in lower and \
                (where := _first_seen(w, release)):
            raise UsageError(f"model type {w!r} does not exist in transformers {release}{where}")
    if not keep:
        close = difflib.get_close_matches(wanted[0].lower(), [n.lower() for n in names], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; patterns like 'llama*' work too"
        raise UsageError(f"no architecture matches --model-type {' '.join(wanted)}{hint}")
    return keep


def _first_seen(model_type: str, release: str) -> str:
    """Where a model type absent from `release` does appear, as a hint (empty when no stored release has it)."""
    from advisor.knowledge.history import first_support

    try:
        found = first_support(model_type.lower())
    except KeyError:
        return ""
    if found.absent_from and Version(release) >= Version(found.absent_from):
        renamed = f", renamed {found.renamed_to}" if found.renamed_to else ""
        return f" (removed in {found.absent_from}{renamed})"
    present = found.present_from
    return f" (first in {present}; pass --transformers {present} or later)" if present else ""


def matrix_view(table: AttentionSupportTable, where: str, requested: str | None,
                model_types: Sequence[str] = ()) -> MatrixView:
    fa4 = Version(table.transformers) >= FA4_SINCE
    rows = sorted(table.architectures, key=lambda a: (a.model_type, a.class_name))
    keep = set(filter_model_types([a.model_type for a in rows], model_types, table.transformers))
    answered = where
    if requested is not None and Version(requested) != Version(table.transformers):
        asked, stored = Version(requested), Version(table.transformers)
        answered = (f"transformers {table.transformers}, the stored patch of {asked.major}.{asked.minor}"
                    if (asked.major, asked.minor) == (stored.major, stored.minor) else
                    f"transformers {table.transformers}, the newest stored release at or below {requested}")
    return MatrixView(
        transformers=table.transformers,
        requested=requested,
        answered_by=answered,
        source=where,
        architectures=[
            MatrixRow(model_type=a.model_type, class_name=a.class_name, eager=a.eager, sdpa=a.sdpa,
                      flash_attention_2=a.flash_attention_2, flash_attention_3=a.flash_attention_3,
                      flash_attention_4=(a.flash_attention_2 and fa4) if a.flash_attention_4 is None
                      else a.flash_attention_4, flex_attention=a.flex_attention)
            for a in rows if a.model_type in keep
        ],
        skipped=list(table.skipped),
        facts_source=load_knowledge().releases.source_of(table.transformers),
    )
