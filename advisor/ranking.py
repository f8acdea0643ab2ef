"""Re-rank the planner's viable options by what the user prefers and by what was measured on this GPU.

The planner (advisor/plan.py) orders options statically: least aggressive quantization, then placement,
warnings, dtype and the attention speed rank. This module is called once, on that list, and
1. reorders quantization by `prefer` (quality: none > 8bit > 4bit; speed: none > 4bit > 8bit, because NF4
   decodes about 3x faster than LLM.int8 on the H100 of docs/benchmarks; memory: 4bit > 8bit > none);
2. puts the measured-fastest attention implementation first among options that differ only in it, when a
   matching measurement exists (local store first, then the shipped rows) and the gap exceeds its noise;
3. states, for every option, its expected throughput relative to the choice and its fidelity note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from advisor.knowledge.measurements import (
    Measurement,
    MeasurementStore,
    pick,
    shape_signature,
    shipped_measurements,
    stale_reason,
    versions_of,
)

if TYPE_CHECKING:
    from advisor.facts import Environment
    from advisor.model import ModelSpec
    from advisor.plan import PlanOption

__all__ = ["PREFERENCES", "Prefer", "RankingAdvice", "Tradeoff", "rerank", "workload_for"]

Prefer = Literal["speed", "quality", "memory"]
PREFERENCES: tuple[str, ...] = ("speed", "quality", "memory")
DEFAULT_PREFER: Prefer = "quality"  # docs/prefer.md argues it
_QUANT_ORDER = {"quality": ("none", "8bit", "4bit"), "speed": ("none", "4bit", "8bit"), "memory": ("4bit", "8bit", "none")}
_MIN_GAIN = 0.03  # below 3% a reorder is within what two processes of one configuration differ by


class Tradeoff(BaseModel):
    """One option beside the choice: how fast it should be, on what evidence, and what it costs in fidelity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    relative_throughput: float | None  # option / choice; None = unmeasured
    basis: str  # "measured ..." or "unmeasured"
    fidelity: str


class RankingAdvice(BaseModel):
    """What re-ranking did and on what evidence; rendered by recommend, check and doctor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefer: Prefer
    workload: str
    measurements: Literal["used", "unmeasured", "off"]
    notes: list[str]
    tradeoffs: list[Tradeoff]


def workload_for(batch: int) -> str:
    """The measured workload a plan stands for: batched decode when batch > 1, else prefill at batch 1."""
    return "batch" if batch > 1 else "prefill"


@lru_cache(maxsize=1)
def _quant_table() -> dict[str, Any]:
    from advisor.knowledge import data_dir

    path = data_dir() / "measurements" / "quantization.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _quant_ratio(quant: str, workload: str) -> float | None:
    if quant == "none":
        return 1.0
    for row in _quant_table()["rows"]:
        if row["quantization"] == quant:
            value = row["relative_to_bf16"].get(workload)
            return float(value) if value is not None else None
    return None


def _fidelity(option: PlanOption) -> str:
    c = option.candidate
    table = _quant_table()
    if c.quantization != "none":
        row = next((r for r in table["rows"] if r["quantization"] == c.quantization), None)
        return str(row["short"]) if row else f"{c.quantization}: logit error not measured"  # another method
    return str(table["dtype_short"].get(c.dtype, ""))


def _gpu_name(name: str) -> str:
    """The table's canonical name for a GPU (so 'NVIDIA H100 80GB HBM3' and --gpu H100-80GB meet)."""
    from advisor.errors import AdvisorError
    from advisor.knowledge import load_knowledge

    try:
        return load_knowledge().gpu(name).name
    except AdvisorError:
        return name


def _evidence(model: ModelSpec, env: Environment, workload: str, use_store: bool
              ) -> tuple[dict[str, Measurement], list[str], str]:
    """candidate label -> measurement, notes, and where they came from ('' when none)."""
    versions = versions_of(env)
    if versions.gpu == "CPU":
        return {}, [], ""
    notes: list[str] = []
    if use_store:
        store = MeasurementStore()
        found = store.lookup(versions, model, workload)
        notes += found.notes
        if found.ignored:
            first = found.ignored[0]
            notes.append(f"ignored {len(found.ignored)} measurement(s) from {first.measured_at} on this GPU: "
                         f"{stale_reason(first, versions)}")
        if found.matches:
            return {m.key.candidate: m for m in found.matches}, notes, "on this GPU"
    wanted = _gpu_name(versions.gpu)
    shipped = [m for m in shipped_measurements() if m.key.model_type == model.model_type
               and m.key.shape == shape_signature(model) and m.key.workload == workload]
    named = [m.model_copy(update={"key": m.key.model_copy(update={"gpu": _gpu_name(m.key.gpu)})}) for m in shipped]
    rows, relation = pick(named, versions.model_copy(update={"gpu": wanted}))
    if rows:
        m = rows[0]
        where = (f"on {m.key.gpu} ({relation}; shipped run {m.run}, torch {m.key.torch}, "
                 f"transformers {m.key.transformers})")
        return {r.key.candidate: r for r in rows}, notes, where
    return {}, notes, ""


def _group(option: PlanOption) -> tuple[str, str, str]:
    c = option.candidate
    return (c.quantization, c.dtype, c.placement)


def rerank(options: Sequence[PlanOption], model: ModelSpec, env: Environment, *, prefer: Prefer = DEFAULT_PREFER,
           batch: int = 1, measurements: bool = True) -> tuple[list[PlanOption], RankingAdvice]:
    """The options in their new order, and the advice that explains it."""
    order = _QUANT_ORDER[prefer]
    # stable: keeps the rest; another method (issue 17) ranks after bitsandbytes whatever --prefer says
    ranked = sorted(options, key=lambda o: order.index(o.candidate.quantization)
                    if o.candidate.quantization in order else len(order))
    workload = workload_for(batch)
    notes: list[str] = []
    evidence: dict[str, Measurement] = {}
    where = ""
    if measurements and ranked:
        evidence, notes, where = _evidence(model, env, workload, use_store=True)
    status: Literal["used", "unmeasured", "off"] = "off" if not measurements else "used" if evidence else "unmeasured"
    if ranked and evidence:
        first = ranked[0]
        group = [o for o in ranked if _group(o) == _group(first) and o.label in evidence]
        if first.label in evidence and group:
            best = max(group, key=lambda o: evidence[o.label].value)
            base, top = evidence[first.label], evidence[best.label]
            noise = max(base.spread or 0.0, top.spread or 0.0, _MIN_GAIN)
            ratio = top.value / base.value if base.value > 0 else 1.0
            date = top.measured_at
            if best is not first and ratio > 1 + noise:
                ranked.remove(best)
                ranked.insert(0, best)
                notes.insert(0, (f"measured {where} on {date}: {best.candidate.attn} {ratio:.1f}x faster than "
                                 f"{first.candidate.attn} ({workload}); {best.candidate.attn} chosen"))
            else:
                notes.insert(0, f"measured {where} on {date}: {first.candidate.attn} is the fastest measured "
                                f"within {100 * noise:.0f}% noise ({workload})")
        else:
            notes.insert(0, f"measured {where}, but not {first.label}: static order kept")
    elif measurements and ranked and versions_of(env).gpu == "CPU":
        notes.insert(0, "unmeasured: measurements are per GPU and this target is the CPU; static order kept "
                        "(`advisor bench MODEL --cpu` times the options here)")
    elif measurements and ranked:
        notes.insert(0, f"unmeasured: no measurement of {model.model_type} ({shape_signature(model)}) for "
                        f"{versions_of(env).gpu}, {workload}; static order kept (run `advisor tune` on that GPU)")
    tradeoffs = _tradeoffs(ranked, evidence, where, workload)
    advice = RankingAdvice(prefer=prefer, workload=workload, measurements=status, notes=notes, tradeoffs=tradeoffs)
    return ranked, advice


def _tradeoffs(ranked: Sequence[PlanOption], evidence: dict[str, Measurement], where: str,
               workload: str) -> list[Tradeoff]:
    """Expected throughput of each option relative to the choice: a direct measurement of both, else the
    quantization ratios measured on the H100 (data/measurements/quantization.json), else unmeasured."""
    if not ranked:
        return []
    choice = ranked[0]
    out = []
    seen: set[tuple[str, str, str]] = set()
    for option in ranked:
        c = option.candidate
        key = (c.attn, c.dtype, c.quantization)
        if key in seen:
            continue
        seen.add(key)
        rel: float | None = None
        basis = "unmeasured"
        if option.label in evidence and choice.label in evidence and evidence[choice.label].value > 0:
            rel = evidence[option.label].value / evidence[choice.label].value
            basis = f"measured {where}"
        elif (c.attn, c.dtype, c.placement) == (choice.candidate.attn, choice.candidate.dtype, choice.candidate.placement):
            # generation at batch 1 is decode-bound: quantization's cost shows there, not in the prefill
            quant_workload = "decode" if workload == "prefill" else workload
            mine = _quant_ratio(c.quantization, quant_workload)
            theirs = _quant_ratio(choice.candidate.quantization, quant_workload)
            if mine is not None and theirs is not None and c.quantization != choice.candidate.quantization:
                rel = mine / theirs
                basis = f"measured {quant_workload} on {_quant_table()['model']}, H100"
            elif option is choice:
                rel, basis = 1.0, "the choice"
        out.append(Tradeoff(label=option.label, relative_throughput=rel, basis=basis, fidelity=_fidelity(option)))
    return out


def measured_notes(model: ModelSpec, env: Environment, candidate: Any, *, batch: int = 1) -> list[str]:
    """For `check`: what was measured about this configuration and its siblings (other attention only)."""
    workload = workload_for(batch)
    if versions_of(env).gpu == "CPU":
        return []  # measurements are per GPU; a CPU plan has none to say
    evidence, notes, where = _evidence(model, env, workload, use_store=True)
    label = candidate.label()
    if label not in evidence:
        return notes + [f"unmeasured: {label} has no measurement for {versions_of(env).gpu}, {workload}"]
    mine = evidence[label]
    siblings = [m for lab, m in evidence.items() if lab != label and lab.split(" / ", 1)[1] == label.split(" / ", 1)[1]]
    best = max(siblings, key=lambda m: m.value, default=None)
    if best is not None and mine.value > 0 and best.value / mine.value > 1 + max(mine.spread or 0, best.spread or 0, _MIN_GAIN):
        attn = best.key.candidate.split(" / ", 1)[0]
        return [*notes, (f"measured {where} on {best.measured_at}: {attn} {best.value / mine.value:.1f}x faster "
                         f"than {candidate.attn} ({workload})")]
    return notes + [f"measured {where} on {mine.measured_at}: {candidate.attn} is the fastest measured ({workload})"]
