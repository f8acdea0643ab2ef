"""A fix never recommends what a rule rejects (issue 31): for a model that declares no sdpa (Gemma-2 from
transformers 5.21), the ATTN fixes that fall back to sdpa fall back to eager, which every model has."""

from __future__ import annotations

import re

from advisor.findings import Finding
from advisor.rules.base import Context

__all__ = ["without_undeclared_sdpa"]

# 'attn_implementation="sdpa"' with the aside that praises it, and the short 'use sdpa'
_SDPA = re.compile(r'attn_implementation="sdpa"(?:\s*\([^)]*\)|: it picks the fastest kernel this GPU supports)?')
_USE_SDPA = re.compile(r"\buse sdpa\b")


def without_undeclared_sdpa(ctx: Context, findings: list[Finding]) -> list[Finding]:
    """`findings` with every sdpa fallback in a fix replaced by eager, where the model declares no sdpa."""
    if ctx.model is None or not ctx.support or ctx.support.get("sdpa", False):
        return findings
    note = f"; {ctx.model.architecture or ctx.model.model_type} declares no sdpa in {ctx.support_source}"
    out = []
    for f in findings:
        fix = _USE_SDPA.sub("use eager", _SDPA.sub('attn_implementation="eager"', f.fix))
        out.append(f if fix == f.fix else f.model_copy(update={"fix": fix + note}))
    return out
