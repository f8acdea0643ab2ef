"""Why nothing fits and the one change that fixes it: rejections grouped, named by whole candidate, fixes ranked.

NOTE: issue 14 items 1-2. A rejection used to be labelled by one dimension ("8bit MEM001 ...") next to a chosen
8-bit plan, and the useful fix came last among 16 unsorted lines. Here a fix is ranked by how many blocked
candidates it alone would unblock, and each rejection names exactly the candidates it covers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.candidate import Candidate
from advisor.findings import Finding

__all__ = ["RankedFix", "group_label", "headline_fix", "rank_fixes", "installs", "switch_rules"]


_PIP = re.compile(r"pip install (?:(?:-U|--upgrade|--no-build-isolation|--force-reinstall)\s+)*'?([A-Za-z0-9][A-Za-z0-9._-]*)")


class RankedFix(BaseModel):
    """One change to the machine and what it buys: the candidates it alone unblocks, and the best of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fix: str
    rules: list[str]
    reason: str
    installs: str | None = None
    unblocks: int
    blocks: int
    best: str | None = None
    best_total_bytes: int | None = None
    best_budget_bytes: int | None = None
    improves: bool = False  # its best candidate would rank above the current choice (always, when none is viable)


def headline_fix(fixes: Sequence[RankedFix]) -> RankedFix | None:
    """The change a blocked plan leads with (recommend's verdict and the fleet view's cell alike, issue 31): the
    fix of the machine that alone unblocks the most candidates; None when no single change unblocks one."""
    return next((r for r in fixes if r.unblocks), None)


def installs(fix: str) -> str | None:
    """The distribution a `pip install ...` fix installs, if it is one."""
    match = _PIP.search(fix)
    return match.group(1).lower() if match else None


@lru_cache(maxsize=1)
def switch_rules() -> frozenset[str]:
    """Rules whose fix is to pick another candidate (another kernel, dtype, GPU or less memory), not to change the
    machine: the planner already tried those candidates, so these fixes never unblock anything by themselves.
    Each rule says so itself (`remedy="switch"`)."""
    from advisor.rules import RULES

    return frozenset(r.code for r in RULES if r.remedy == "switch")


def rank_fixes(
    failed: Sequence[tuple[Candidate, list[Finding], Any]], rank: Callable[[Any], tuple[int, ...]], total: int,
    chosen_rank: tuple[int, ...] | None = None,
) -> list[RankedFix]:
    """Fixes of the machine (install, upgrade), most candidates unblocked first.

    `failed` holds (candidate, its failures, its evaluation); a fix unblocks a candidate when every failure of
    that candidate is fixed by it. `rank` orders evaluations best first (the planner's own ranking).
    """
    by_fix: dict[str, list[tuple[Candidate, list[Finding], Any]]] = {}
    reasons: dict[str, Finding] = {}
    codes: dict[str, set[str]] = {}
    switch = switch_rules()
    for cand, failures, ev in failed:
        fixes = {f.fix for f in failures if f.code not in switch}
        for f in failures:
            if f.code not in switch:
                codes.setdefault(f.fix, set()).add(f.code)
                reasons.setdefault(f.fix, f)
        for fix in fixes:
            by_fix.setdefault(fix, []).append((cand, failures, ev))
    out = []
    for fix, touched in by_fix.items():
        freed = [ev for cand, failures, ev in touched if all(f.code not in switch and f.fix == fix for f in failures)]
        best = min(freed, key=rank) if freed else None
        out.append(RankedFix(
            fix=fix, rules=sorted(codes[fix]), reason=reasons[fix].message, installs=installs(fix),
            unblocks=len(freed), blocks=len(touched),
            best=best.candidate.label() if best is not None else None,
            best_total_bytes=best.memory.total_bytes if best is not None else None,
            best_budget_bytes=best.memory.budget_bytes if best is not None else None,
            improves=best is not None and (chosen_rank is None or rank(best) < chosen_rank),
        ))
    return sorted(out, key=lambda r: (-r.unblocks, -r.blocks, r.fix))


def _dim(values: set[str], universe: list[str], noun: str, render: Callable[[str], str] = str) -> str:
    ordered = [v for v in universe if v in values]
    if len(ordered) == len(universe) and len(universe) > 1:
        return f"any {noun}"
    return "|".join(render(v) for v in ordered)


_WHERE = {"gpu": "1 GPU", "multi-gpu": "all GPUs", "cpu": "CPU"}


def _label(group: Sequence[Candidate], universe: Sequence[Candidate]) -> str:
    attns = list(dict.fromkeys(c.attn for c in universe))
    dtypes = list(dict.fromkeys(c.dtype for c in universe))
    quants = list(dict.fromkeys(c.quantization for c in universe))
    places = list(dict.fromkeys(c.placement for c in universe))
    q = {c.quantization for c in group}
    quant = _dim(q, quants, "quantization", lambda v: "no quantization" if v == "none" else f"bnb {v}")
    if q == {"none"}:
        quant = ""
    dtype = _dim({c.dtype for c in group}, dtypes, "dtype")
    parts = [_dim({c.attn for c in group}, attns, "attention"), dtype + (f" + {quant}" if quant and len(q) == 1
             else f", {quant}" if quant else ""),
             _dim({c.placement for c in group}, places, "placement", _WHERE.__getitem__)]
    return " / ".join(parts)


def _is_product(group: Sequence[Candidate], universe: Sequence[Candidate]) -> bool:
    dims = [{getattr(c, d) for c in group} for d in ("attn", "dtype", "quantization", "placement")]
    span = [c for c in universe if all(getattr(c, d) in s for d, s in zip(("attn", "dtype", "quantization", "placement"), dims))]
    return len(span) == len(set(group))


def group_label(group: Iterable[Candidate], universe: Sequence[Candidate]) -> str:
    """A short, exact name for a set of candidates: 'eager|sdpa / float16 + bnb 8bit / 1 GPU'.

    Where the set is not a full product of its values, it is split (by quantization and placement, then by
    dtype too) into parts that are, joined by '; '.
    """
    cands = list(dict.fromkeys(group))
    if _is_product(cands, universe):
        return _label(cands, universe)
    for keys in (("quantization", "placement"), ("dtype", "quantization", "placement")):
        parts: dict[tuple[str, ...], list[Candidate]] = {}
        for c in cands:
            parts.setdefault(tuple(getattr(c, k) for k in keys), []).append(c)
        if all(_is_product(p, universe) for p in parts.values()):
            return "; ".join(_label(p, universe) for p in parts.values())
    return "; ".join(c.label() for c in cands)
