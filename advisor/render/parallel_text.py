"""Text lines for the `parallelism` key (issue 30): the choice, its reasons, the launch line, one rank's memory."""

from __future__ import annotations

import json
from typing import Any

from advisor.numbers import size

__all__ = ["parallelism_lines", "rank_lines"]


def parallelism_lines(p: Any, *, quiet_none: bool = True) -> list[str]:
    """Nothing for a plain one-device plan (`quiet_none`); otherwise the choice and why."""
    if p is None or (quiet_none and p.kind == "none" and not p.findings):
        return []
    head = {"none": "none", "pipeline": f"pipeline (device_map) over {p.size} GPUs",
            "tensor": f"tensor parallel, {p.size} ranks"}[p.kind]
    lines = ["", f"Parallelism: {head}"]
    lines += [f"  - {reason}" for reason in p.reasons]
    if p.kind == "tensor":
        lines += [f"  launch: {p.launch}", "  from_pretrained kwargs (every rank):",
                  *("    " + line for line in json.dumps(p.from_pretrained, indent=2).splitlines())]
    r = p.per_rank
    if r is not None:
        lines.append(f"  one rank of {r.size}: weights {size(r.sharded_weights_bytes)} sharded + "
                     f"{size(r.replicated_weights_bytes)} replicated, KV cache {size(r.kv_cache_bytes)}, activations "
                     f"{size(r.activation_bytes)}, context {size(r.context_bytes)} = {size(r.total_bytes)} of "
                     f"{size(r.budget_bytes)}")
    if p.tp_plan_source:
        lines.append(f"  TP plan: {p.tp_plan_source}")
    return lines


def rank_lines(ranks: list[dict[str, Any]] | None) -> list[str]:
    """smoke --tp: each rank's outcome and peak RSS beside the per-rank plan."""
    if not ranks:
        return []
    lines = ["", "  rank  ok    peak RSS  before load  growth   planned (weights + KV + activations)"]
    for r in ranks:
        if not r["ok"]:
            lines.append(f"  {r['rank']:>4}  no    {r.get('error') or ''}")
            continue
        growth = (r["peak_rss_bytes"] or 0) - (r.get("baseline_rss_bytes") or 0)
        lines.append(f"  {r['rank']:>4}  yes  {size(r['peak_rss_bytes']):>9}  {size(r.get('baseline_rss_bytes')):>11}  "
                     f"{size(growth):>8}   {size(r.get('planned_bytes'))}")
    return lines
