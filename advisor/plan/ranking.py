"""Re-rank the planner's viable options by what the user prefers and by what was measured on this GPU.

The planner (advisor/plan/recommend.py) orders options statically: least aggressive quantization, then placement,
warnings, dtype and the attention speed rank. This module is called once, on that list, and
1. reorders quantization by `prefer` (quality: none > 8bit > 4bit; speed: none > 4bit > 8bit, because NF4
   decodes about 3x faster than LLM.int8 on the H100 of docs/benchmarks; memory: 4bit > 8bit > none);
2. puts the measured-fastest attention implementation first among options that differ only in it, when a
   matching measurement exists (local store first, then the shipped rows) and the gap exceeds its noise;
3. states, for every option, its expected throughput relative to the choice and its fidelity note.
Issue 29: rows of several runs meet on one scale (advisor/knowledge/measured_runs.py), and the first call of a
compiled kernel (flex_attention's compile, flash-attn-4's JIT) is stated; `serving` ("server", the default, or
"one-shot": the CLI's --workload) decides whether it counts: a server pays it once per shape and ranks by the
steady state, a one-shot job pays it in full and ranks by the measured first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from advisor.knowledge.measured_runs import OneScale, attn_of, first_calls, one_scale
from advisor.knowledge.measurements import (
    Measurement,
    MeasurementStore,
    Versions,
    kernel_of,
    kernel_versions,
    pick,
    shipped_measurements,
    stale_reason,
    versions_of,
)
from advisor.knowledge.notes import quantization_table
from advisor.model.spec import shape_signature
from advisor.plan.options import DEFAULT_PREFER, Prefer, RankingAdvice, Serving, Tradeoff

if TYPE_CHECKING:
    from advisor.facts import Environment
    from advisor.model.spec import ModelSpec
    from advisor.plan.options import PlanOption

__all__ = ["rerank", "workload_for"]

_QUANT_ORDER = {"quality": ("none", "8bit", "4bit"), "speed": ("none", "4bit", "8bit"), "memory": ("4bit", "8bit", "none")}
COMPILED = ("flex_attention", "flash_attention_4")  # kernels compiled at the first call of a shape
_MIN_GAIN = 0.03  # below 3% a reorder is within what two processes of one configuration differ by


def workload_for(batch: int) -> str:
    """The measured workload a plan stands for: batched decode when batch > 1, else prefill at batch 1."""
    return "batch" if batch > 1 else "prefill"


def _quant_ratio(quant: str, workload: str) -> float | None:
    if quant == "none":
        return 1.0
    for row in quantization_table().rows:
        if row.quantization == quant:
            value = row.relative_to_bf16.get(workload)
            return float(value) if value is not None else None
    return None


def _fidelity(option: PlanOption) -> str:
    c = option.candidate
    table = quantization_table()
    if c.quantization != "none":
        row = next((r for r in table.rows if r.quantization == c.quantization), None)
        return row.short if row else f"{c.quantization}: logit error not measured"  # another method
    return table.dtype_short.get(c.dtype, "")


def _gpu_name(name: str) -> str:
    """The table's canonical name for a GPU (so 'NVIDIA H100 80GB HBM3' and --gpu H100-80GB meet)."""
    from advisor.errors import AdvisorError
    from advisor.knowledge import load_knowledge

    try:
        return load_knowledge().gpu(name).name
    except AdvisorError:
        return name


def _kernel_note(rows: list[Measurement], versions: Versions) -> tuple[list[Measurement], list[str]]:
    """Shipped rows of a kernel package this environment lacks say nothing about it (the option is not offered);
    another version of it is stated, as torch's and transformers' are."""
    have = kernel_versions(versions.attention_kernels)
    kept, notes = [], []
    for row in rows:
        dist = kernel_of(row.key.candidate)
        if dist is None:
            kept.append(row)
            continue
        theirs = kernel_versions(row.key.attention_kernels).get(dist, "none")
        if have.get(dist, "none") == "none" or theirs == "none":
            continue
        kept.append(row)
        if theirs != have[dist]:
            notes.append(f"{attn_of(row.key.candidate)} was measured with {dist} {theirs} (here {have[dist]})")
    return kept, sorted(set(notes))


def _evidence(model: ModelSpec, env: Environment, workload: str, use_store: bool
              ) -> tuple[OneScale, list[str], str, list[Measurement]]:
    """candidate label -> measurement on one scale, notes, where they came from ('' when none), and the rows
    of this GPU at this workload for every model (the first-call ranges)."""
    versions = versions_of(env)
    empty = OneScale(rows={}, scale={})
    if versions.gpu == "CPU":
        return empty, [], "", []
    notes: list[str] = []
    wanted = _gpu_name(versions.gpu)
    named = [m.model_copy(update={"key": m.key.model_copy(update={"gpu": _gpu_name(m.key.gpu)})})
             for m in shipped_measurements() if m.key.workload == workload]
    here, relation = pick(named, versions.model_copy(update={"gpu": wanted}))
    here, kernel_notes = _kernel_note(here, versions)
    if use_store:
        store = MeasurementStore()
        found = store.lookup(versions, model.model_type, shape_signature(model), workload)
        notes += found.notes
        if found.ignored:
            first = found.ignored[0]
            notes.append(f"ignored {len(found.ignored)} measurement(s) from {first.measured_at} on this GPU: "
                         f"{stale_reason(first, versions)}")
        if found.matches:  # the shipped rows still give the first-call ranges (tune does not time first calls)
            return one_scale(found.matches), notes, "on this GPU", [*found.matches, *here]
    rows = [m for m in here if m.key.model_type == model.model_type and m.key.shape == shape_signature(model)]
    if rows:
        scaled = one_scale(rows)
        runs = sorted({m.run for m in scaled.rows.values()})
        m = rows[0]
        torch = sorted({r.key.torch for r in rows})
        tf = sorted({r.key.transformers for r in rows})
        where = (f"on {m.key.gpu} ({relation}; shipped run{'s' if len(runs) > 1 else ''} {', '.join(runs)}, "
                 f"torch {', '.join(torch)}, transformers {', '.join(tf)})")
        return scaled, notes + kernel_notes, where, here
    return empty, notes, "", here


def _group(option: PlanOption) -> tuple[str, str, str]:
    c = option.candidate
    return (c.quantization, c.dtype, c.placement)


def _score(evidence: OneScale, label: str, serving: Serving) -> float | None:
    """Higher is better: steady-state throughput for a server, 1 / first-call seconds for a one-shot job."""
    row = evidence.rows.get(label)
    if row is None:
        return None
    if serving == "server":
        return row.value
    return 1.0 / row.first_call_seconds if row.first_call_seconds else None


def _first_call_note(ranked: Sequence[PlanOption], model: ModelSpec, rows: list[Measurement], workload: str,
                     serving: Serving) -> list[str]:
    """What the first forward at a new shape costs for the compiled kernels among the options, and whether the
    ranking counted it."""
    offered = {o.candidate.attn for o in ranked}
    found = [f for f in first_calls(rows, model.model_type, shape_signature(model), workload)
             if f.attn in COMPILED and f.attn in offered]
    if not found:
        return []
    parts = []
    for f in found:
        span = f"{f.low:.1f}-{f.high:.1f} s over {f.rows} measured shape(s)" if f.rows > 1 else f"{f.low:.1f} s"
        parts.append(f"{f.attn} {f.this_model:.1f} s for this model ({span})" if f.this_model is not None
                     else f"{f.attn} {span} (this model unmeasured)")
    counted = ("not counted: --workload server pays it once per process and shape, then runs at the steady state "
               "ranked here" if serving == "server" else
               "counted: --workload one-shot ranks by the measured first call (a one-shot job pays it in full) where "
               "this model's options have one")
    return [f"first call at a new shape (a fresh process): {'; '.join(parts)}; {counted}"]


def rerank(options: Sequence[PlanOption], model: ModelSpec, env: Environment, *, prefer: Prefer = DEFAULT_PREFER,
           batch: int = 1, measurements: bool = True, serving: Serving = "server"
           ) -> tuple[list[PlanOption], RankingAdvice]:
    """The options in their new order, and the advice that explains it."""
    order = _QUANT_ORDER[prefer]
    # stable: keeps the rest; another method (issue 17) ranks after bitsandbytes whatever --prefer says
    ranked = sorted(options, key=lambda o: order.index(o.candidate.quantization)
                    if o.candidate.quantization in order else len(order))
    workload = workload_for(batch)
    notes: list[str] = []
    evidence = OneScale(rows={}, scale={})
    gpu_rows: list[Measurement] = []
    where = ""
    if measurements and ranked:
        evidence, notes, where, gpu_rows = _evidence(model, env, workload, use_store=True)
    status: Literal["used", "unmeasured", "off"] = ("off" if not measurements else "used" if evidence.rows
                                                     else "unmeasured")
    what = "first call" if serving == "one-shot" else workload
    if ranked and evidence.rows:
        first = ranked[0]
        group = [o for o in ranked if _group(o) == _group(first) and _score(evidence, o.label, serving) is not None
                 and evidence.comparable(o.label, first.label)]
        if _score(evidence, first.label, serving) is not None and group:
            best = max(group, key=lambda o: _score(evidence, o.label, serving) or 0.0)
            base, top = evidence.rows[first.label], evidence.rows[best.label]
            noise = max(base.spread or 0.0, top.spread or 0.0, _MIN_GAIN)
            mine, theirs = _score(evidence, first.label, serving) or 0.0, _score(evidence, best.label, serving) or 0.0
            ratio = theirs / mine if mine > 0 else 1.0
            date = top.measured_at
            if best is not first and ratio > 1 + noise:
                ranked.remove(best)
                ranked.insert(0, best)
                notes.insert(0, (f"measured {where} on {date}: {best.candidate.attn} {ratio:.2f}x faster than "
                                 f"{first.candidate.attn} ({what}); {best.candidate.attn} chosen"))
            else:
                notes.insert(0, f"measured {where} on {date}: {first.candidate.attn} is the fastest measured "
                                f"within {100 * noise:.0f}% noise ({what})")
        else:
            what_of = f"the first call of {first.label}" if serving == "one-shot" else first.label
            notes.insert(0, f"measured {where}, but not {what_of}: static order kept")
    elif measurements and ranked and versions_of(env).gpu == "CPU":
        notes.insert(0, "unmeasured: measurements are per GPU and this target is the CPU; static order kept "
                        "(`advisor bench MODEL --cpu` times the options here)")
    elif measurements and ranked:
        notes.insert(0, f"unmeasured: no measurement of {model.model_type} ({shape_signature(model)}) for "
                        f"{versions_of(env).gpu}, {workload}; static order kept (run `advisor tune` on that GPU)")
    if measurements:
        notes += _first_call_note(ranked, model, gpu_rows, workload, serving)
    tradeoffs = _tradeoffs(ranked, evidence, where, workload, serving)
    advice = RankingAdvice(prefer=prefer, workload=workload, serving=serving, measurements=status, notes=notes,
                           tradeoffs=tradeoffs)
    return ranked, advice


def _tradeoffs(ranked: Sequence[PlanOption], evidence: OneScale, where: str, workload: str,
               serving: Serving = "server") -> list[Tradeoff]:
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
        mine, theirs = _score(evidence, option.label, serving), _score(evidence, choice.label, serving)
        if mine is not None and theirs and evidence.comparable(option.label, choice.label):
            rel = mine / theirs
            basis = f"measured {where}" + (" (first call)" if serving == "one-shot" else "")
        elif (c.attn, c.dtype, c.placement) == (choice.candidate.attn, choice.candidate.dtype, choice.candidate.placement):
            # generation at batch 1 is decode-bound: quantization's cost shows there, not in the prefill
            quant_workload = "decode" if workload == "prefill" else workload
            mine, theirs = _quant_ratio(c.quantization, quant_workload), _quant_ratio(choice.candidate.quantization,
                                                                                      quant_workload)
            if mine is not None and theirs is not None and c.quantization != choice.candidate.quantization:
                rel = mine / theirs
                basis = f"measured {quant_workload} on {quantization_table().model}, H100"
            elif option is choice:
                rel, basis = 1.0, "the choice"
        out.append(Tradeoff(label=option.label, relative_throughput=rel, basis=basis, fidelity=_fidelity(option)))
    return out


def measured_notes(model: ModelSpec, env: Environment, candidate: Any, *, batch: int = 1) -> list[str]:
    """For `check`: what was measured about this configuration and its siblings (other attention only)."""
    workload = workload_for(batch)
    if versions_of(env).gpu == "CPU":
        return []  # measurements are per GPU; a CPU plan has none to say
    scaled, notes, where, _ = _evidence(model, env, workload, use_store=True)
    label = candidate.label()
    if label not in scaled.rows:
        return notes + [f"unmeasured: {label} has no measurement for {versions_of(env).gpu}, {workload}"]
    mine = scaled.rows[label]
    siblings = [m for lab, m in scaled.rows.items() if lab != label and scaled.comparable(lab, label)
                and lab.split(" / ", 1)[1] == label.split(" / ", 1)[1]]
    best = max(siblings, key=lambda m: m.value, default=None)
    if best is not None and mine.value > 0 and best.value / mine.value > 1 + max(mine.spread or 0, best.spread or 0, _MIN_GAIN):
        attn = best.key.candidate.split(" / ", 1)[0]
        return [*notes, (f"measured {where} on {best.measured_at}: {attn} {best.value / mine.value:.2f}x faster "
                         f"than {candidate.attn} ({workload})")]
    return notes + [f"measured {where} on {mine.measured_at}: {candidate.attn} is the fastest measured ({workload})"]
