"""Measurements from several runs on one scale, and what a kernel's first call costs (issue 29).

A run times its candidates on the same weights in the same process, so only ratios within a run mean anything:
the H100 rows of 2026-11-25 (sdpa and eager, some at full depth) and those of 2026-12-06 (sdpa, flash-attn-4 and
flex_attention at 4 layers) differ in absolute tokens/s by the depth alone. `one_scale` keeps the run that timed
the most candidates and brings another run's candidate onto its scale through a candidate both runs timed (sdpa in
practice), so every comparison is a within-run ratio, or a product of two. `first_calls` reads the rows'
`first_call_seconds`: the first forward of a fresh process at a shape (flex_attention's inductor compile,
flash-attn-4's CuTe JIT), which a long-running server pays once and a one-shot job pays in full.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from advisor.knowledge.measurements import Measurement

__all__ = ["FirstCall", "OneScale", "attn_of", "first_calls", "one_scale"]


def attn_of(label: str) -> str:
    return label.split(" / ", 1)[0]


def _runs(rows: Sequence[Measurement]) -> list[list[Measurement]]:
    """Rows grouped by run, the run with the most candidates first (then the newest)."""
    by_run: dict[str, list[Measurement]] = defaultdict(list)
    for row in rows:
        by_run[row.run].append(row)
    return sorted(by_run.values(), key=lambda r: (len({m.key.candidate for m in r}), r[0].measured_at, r[0].run),
                  reverse=True)


class OneScale(BaseModel):
    """candidate label -> its row (values rescaled where needed), and the run whose scale it is on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: dict[str, Measurement]
    scale: dict[str, str]

    def comparable(self, a: str, b: str) -> bool:
        return a in self.rows and b in self.rows and self.scale[a] == self.scale[b]


def _rest(label: str) -> str:
    return label.split(" / ", 1)[1] if " / " in label else ""


def _scale_group(rows: Sequence[Measurement]) -> tuple[dict[str, Measurement], str]:
    runs = _runs(rows)
    chosen = {m.key.candidate: m for m in runs[0]}
    pending = runs[1:]
    while pending:
        for run in pending:
            mine = {m.key.candidate: m for m in run}
            shared = sorted(set(mine) & set(chosen), key=lambda label: (attn_of(label) != "sdpa", label))
            if shared and mine[shared[0]].value > 0:
                anchor_here, anchor_there = chosen[shared[0]], mine[shared[0]]
                factor = anchor_here.value / anchor_there.value
                for label, row in mine.items():
                    if label not in chosen:
                        spread = max(row.spread or 0.0, anchor_here.spread or 0.0, anchor_there.spread or 0.0)
                        chosen[label] = row.model_copy(update={"value": row.value * factor, "spread": spread})
                pending.remove(run)
                break
        else:
            break
    return chosen, runs[0][0].run


def one_scale(rows: Sequence[Measurement]) -> OneScale:
    """Per dtype/quantization/placement (the options the ranking compares): the rows on the scale of the run
    that timed the most of its candidates. A candidate only another run timed is scaled by the ratio of a
    candidate both runs timed, and its spread becomes the largest of the three rows' (two ratios multiply); a
    run sharing no candidate is left out. Two groups compare only when their scale is the same run."""
    groups: dict[str, list[Measurement]] = defaultdict(list)
    for row in rows:
        groups[_rest(row.key.candidate)].append(row)
    out: dict[str, Measurement] = {}
    scale: dict[str, str] = {}
    for group in groups.values():
        chosen, base = _scale_group(group)
        out.update(chosen)
        scale.update(dict.fromkeys(chosen, base))
    return OneScale(rows=out, scale=scale)


class FirstCall(BaseModel):
    """What the first forward at a new shape cost, for one attention implementation on one GPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attn: str
    low: float
    high: float
    this_model: float | None  # the row of this model and shape, when measured
    rows: int  # how many rows the range spans


def first_calls(rows: Sequence[Measurement], model_type: str, shape: str, workload: str) -> list[FirstCall]:
    """Per attention implementation: the first-call seconds of this model's row and the range over every model
    measured on this GPU (the model's own row may be missing: flex compiles at every new shape all the same)."""
    by_attn: dict[str, list[Measurement]] = defaultdict(list)
    for row in rows:
        if row.first_call_seconds is not None and row.key.workload == workload:
            by_attn[attn_of(row.key.candidate)].append(row)
    out = []
    for attn, found in sorted(by_attn.items()):
        seconds = [r.first_call_seconds for r in found if r.first_call_seconds is not None]
        own = [r.first_call_seconds for r in found if (r.key.model_type, r.key.shape) == (model_type, shape)]
        out.append(FirstCall(attn=attn, low=min(seconds), high=max(seconds), this_model=max(own) if own else None,
                             rows=len(found)))
    return out
