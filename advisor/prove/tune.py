"""`advisor tune`: time the viable candidates on this GPU, on the model's real shapes, within a time budget.

Weights are random and built on the device (advisor/prove/random_model.py), so no checkpoint is needed;
`--checkpoint` loads the model's own weights instead. Each candidate runs in a child through the benchmark
worker (advisor/prove/bench_worker.py, advisor/isolation/child.py). Issue 27: the budget covers the whole command,
probe and plan included, and is spent where it tells most:
- each candidate's cost is estimated before it starts (advisor/prove/tune_cost.py: child start, load, compile,
  timed runs; each part names its basis, and what this run has measured replaces the defaults);
- the static choice (what recommend picks without measurements) runs first and its closest rival second, then the
  rest by expected value per second;
- a budget too small for the first two says so in one line before anything runs, with the budget that would do;
- no candidate after the first starts when its estimate exceeds what is left (the report names it, its estimate
  and the budget that would include it); the first always starts, since a tune that measures nothing answers
  nothing and its estimate is the least certain one;
- a child still running at the budget plus GRACE_SECONDS is killed and reported as stopped at the budget, so the
  whole command ends within the budget plus MARGIN_SECONDS (the grace, and run_child's bounded wait for a killed
  child's pipes).
Depth is cut to a few layers only for model types whose truncated ranking matched the full-depth ranking on the
H100 (data/measurements/*.json `depth_checks`). The results go to the measurement store, where recommend, check
and doctor find them.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from advisor.errors import UsageError
from advisor.facts import SCHEMA_VERSION, Environment
from advisor.io.read_input import read_json_file
from advisor.isolation.child import KILL_WAIT_SECONDS, run_child
from advisor.knowledge import load_knowledge
from advisor.knowledge.measurements import (
    Measurement,
    MeasurementKey,
    MeasurementStore,
    depth_checks,
    versions_of,
)
from advisor.model.spec import ModelSpec, shape_signature
from advisor.plan.options import PlanOption, PlanRequest, Recommendation
from advisor.plan.recommend import auto_class_name, make_plan
from advisor.prove.bench import WORKLOADS, Workload, fitted_workload
from advisor.prove.tune_cost import (
    REPEATS,
    Calibration,
    CandidateCost,
    estimate_cost,
    first_call_rows,
    load_bytes,
    modelled_timed_seconds,
)

__all__ = ["MARGIN_SECONDS", "TRUNCATED_LAYERS", "TuneEstimate", "TuneReport", "TunePlan", "budget_note",
           "order_candidates", "plan_tune", "run_tune"]

TRUNCATED_LAYERS = 4
GRACE_SECONDS = 5.0  # a child may run this far past the budget (an estimate a little short still gives its figure)
MARGIN_SECONDS = GRACE_SECONDS + KILL_WAIT_SECONDS  # the whole command ends within budget + this
Outcome = Literal["measured", "failed", "skipped", "stopped"]


class TuneRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    value: float
    spread: float | None
    seconds: float  # wall time of its child, load included


class TuneMiss(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    error: str | None = None
    reason: str | None = None


class TuneEstimate(CandidateCost):
    """A candidate's cost as estimated just before its turn, its place in the order and why, and what happened."""

    position: int
    order_reason: str
    outcome: Outcome
    measured_seconds: float | None = None  # its child's wall time, when it started


class TuneReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run: str
    model: str
    device: str
    workload: str
    metric: str
    weights: str
    layers_run: int
    layers_total: int
    depth_note: str
    budget_seconds: float
    elapsed_seconds: float
    ranking: list[TuneRow]
    failed: list[TuneMiss]
    skipped: list[TuneMiss]
    static_choice: str | None
    winner: str | None
    static_ratio: float | None
    recorded: int
    notes: list[str]
    # issue 27: new keys only
    estimates: list[TuneEstimate] = []
    budget_note: str | None = None
    margin_seconds: float = MARGIN_SECONDS

    @property
    def ok(self) -> bool:
        return bool(self.ranking)


def model_config_dict(model: ModelSpec, argument: str) -> dict[str, Any]:
    """The model's config.json as a dict: from its folder, the file given, or the shipped table."""
    if model.path is not None and (Path(model.path) / "config.json").is_file():
        data = read_json_file(Path(model.path) / "config.json", what="config.json")
    elif Path(argument).expanduser().is_file():
        data = read_json_file(Path(argument).expanduser(), what="config.json")
    else:
        shipped = load_knowledge().shipped_model(model.name)
        if shipped is None:
            raise UsageError(f"no config.json for {model.name}: pass a model folder or a config.json")
        data = dict(shipped.config)
    if not isinstance(data, dict):
        raise UsageError(f"the config of {model.name} is not a JSON object")
    return data


def _group(option: PlanOption) -> tuple[str, str, str]:
    c = option.candidate
    return (c.dtype, c.quantization, c.placement)


def order_candidates(runnable: list[PlanOption], costs: dict[str, CandidateCost], static_rank: dict[str, int],
                     static_is_choice: bool = True) -> list[tuple[PlanOption, str]]:
    """The static choice, its closest rival, then the rest by expected value per second; each with its reason.

    Issue 27: flex_attention was timed last in its group (its compile crowded out the others), so a 60 s budget
    skipped it on gpt-oss, where it was the static choice. The value of a candidate is the planner's prior that it
    is fast: 1 / (1 + its place in the static order), the order recommend ranks by without measurements."""
    if not runnable:
        return []
    static = runnable[0]
    rival = next((o for o in runnable[1:] if _group(o) == _group(static)), runnable[1] if len(runnable) > 1 else None)
    out = [(static, "static choice: what recommend picks without measurements" if static_is_choice else
            "first option in the static order that tune can time (the static choice cannot be timed here)")]
    if rival is not None:
        out.append((rival, "closest rival: the next option in the static order" +
                    (" that differs only in attention" if _group(rival) == _group(static) else "")))
    rest = [o for o in runnable if o is not static and o is not rival]

    def per_second(o: PlanOption) -> float:
        return 1.0 / (1 + static_rank[o.label]) / max(costs[o.label].seconds, 0.1)

    for o in sorted(rest, key=per_second, reverse=True):
        out.append((o, f"expected value per second: prior {1.0 / (1 + static_rank[o.label]):.2f} (1 / (1 + static "
                       f"rank {static_rank[o.label]})) over an estimated {costs[o.label].seconds:.0f} s"))
    return out


def _names(a: PlanOption, b: PlanOption) -> tuple[str, str]:
    """Attention names where the two differ only in attention (as users name them), else whole labels."""
    return (a.candidate.attn, b.candidate.attn) if _group(a) == _group(b) else (a.label, b.label)


def _round_up(seconds: float) -> int:
    return int(math.ceil(seconds / 10.0) * 10)


def budget_note(budget: float, spent: float, ordered: list[tuple[PlanOption, str]],
                costs: dict[str, CandidateCost]) -> str | None:
    """One line before anything runs when the budget cannot hold the static choice and its rival."""
    if not ordered:
        return None
    static = ordered[0][0]
    first = costs[static.label].seconds
    stop = f", stopped at {budget:g} s + {GRACE_SECONDS:g} s if it runs over" if spent + first > budget else ""
    was = f", {spent:.0f} s spent before" if spent >= 1 else ""
    if len(ordered) == 1:
        if spent + first <= budget:
            return None
        return (f"budget {budget:g} s is too small for {static.label} (estimated {first:.0f} s{was}): measuring it"
                f"{stop}; --budget-seconds {_round_up(spent + first)} would measure it")
    rival = ordered[1][0]
    second = costs[rival.label].seconds
    if spent + first + second <= budget:
        return None
    a, b = _names(static, rival)
    return (f"budget {budget:g} s is too small for {a} and {b} (estimated {first:.0f} s + {second:.0f} s{was}): "
            f"measuring {a} only{stop}; --budget-seconds {_round_up(spent + first + second)} would measure both")


@dataclass
class TunePlan:
    """What tune will time, in which order and why, at what estimated cost: decided before any child starts."""

    plan: Recommendation
    options: list[PlanOption]
    workload: Workload
    layers: int | None
    depth_note: str
    skipped: list[TuneMiss]
    ordered: list[tuple[PlanOption, str]]
    costs: dict[str, CandidateCost]
    cost: Callable[[PlanOption], CandidateCost]  # reads `calibration`: what the run has measured so far
    calibration: Calibration


def plan_tune(model: ModelSpec, env: Environment, config: dict[str, Any] | None, *, workload: str = "prefill",
              simulate: bool = False, cpu_load: float = 1.0, cache: bool = True) -> TunePlan:
    """The static plan's options that tune can time, ordered, each with its estimated cost (no child runs);
    `cpu_load` as in advisor/prove/tune_cost.py (run_tune passes this machine's); `cache=False` as --no-cache."""
    if workload not in WORKLOADS:
        raise UsageError(f"unknown workload {workload!r}; choose decode, prefill or batch")
    w = fitted_workload(workload, model.max_positions)
    plan = make_plan(model, env, PlanRequest(batch=w.batch, seq_len=w.prompt + w.new_tokens, prompt_len=w.prompt,
                                             measurements=False, simulate=simulate, cache=cache))
    options = ([plan.chosen] if plan.chosen else []) + list(plan.alternatives)
    skipped: list[TuneMiss] = []
    runnable = []
    for option in options:
        if config is not None and option.candidate.quantization != "none":
            skipped.append(TuneMiss(label=option.label, reason="quantized: needs a checkpoint (--checkpoint)"))
        elif option.candidate.placement == "multi-gpu":
            skipped.append(TuneMiss(label=option.label, reason="multi-GPU placement: tune times one GPU"))
        else:
            runnable.append(option)
    checked = depth_checks()
    layers: int | None = None
    depth_note = "full depth"
    if config is not None and checked.get(model.model_type) and model.num_layers > TRUNCATED_LAYERS:
        layers = TRUNCATED_LAYERS
        depth_note = (f"{model.model_type}: the truncated ranking matched the full-depth ranking on the H100 "
                      "(data/measurements, depth_checks)")
    elif checked.get(model.model_type) is False:
        depth_note = f"full depth: truncating {model.model_type} changed the ranking on the H100"
    rows = first_call_rows(env, w)
    calibration = Calibration()

    def cost(option: PlanOption) -> CandidateCost:
        return estimate_cost(option, model, w, layers=layers, checkpoint=config is None, rows=rows,
                             calibration=calibration, cpu_load=cpu_load)

    costs = {o.label: cost(o) for o in runnable}
    ordered = order_candidates(runnable, costs, {o.label: i for i, o in enumerate(options)},
                               static_is_choice=bool(runnable) and runnable[0] is plan.chosen)
    return TunePlan(plan=plan, options=options, workload=w, layers=layers, depth_note=depth_note, skipped=skipped,
                    ordered=ordered, costs=costs, cost=cost, calibration=calibration)


def run_tune(model: ModelSpec, env: Environment, config: dict[str, Any] | None, *, workload: str = "prefill",
             budget: float = 60.0, store: MeasurementStore | None = None, record: bool = True,
             timeout: float = 600.0, started: float | None = None, simulate: bool = False,
             cache: bool = True, say: Callable[[str], None] | None = None) -> TuneReport:
    """Time the candidates; `config` None means load the checkpoint at `model.path`; `simulate` as --simulate,
    `cache=False` as --no-cache; `say` gets the up-front budget line before anything runs (the CLI: stderr)."""
    start = started if started is not None else time.perf_counter()  # the command's start: probe and plan count
    tp = plan_tune(model, env, config, workload=workload, simulate=simulate, cpu_load=_cpu_load(), cache=cache)
    plan, options, w, layers, skipped = tp.plan, tp.options, tp.workload, tp.layers, tp.skipped
    note = budget_note(budget, time.perf_counter() - start, tp.ordered, tp.costs)
    if note and say is not None:
        say(note)
    deadline = start + budget + GRACE_SECONDS
    timed: list[TuneRow] = []
    failed: list[TuneMiss] = []
    estimates: list[TuneEstimate] = []
    for position, (option, why) in enumerate(tp.ordered):
        estimate = tp.cost(option)  # again: what this run has measured so far replaces the defaults
        now = time.perf_counter()
        spent, left = now - start, budget - (now - start)
        child_timeout = min(timeout, deadline - now)
        outcome: Outcome = "measured"
        seconds: float | None = None
        if (position > 0 and estimate.seconds > left) or child_timeout < 1:
            outcome = "skipped"
            skipped.append(TuneMiss(label=option.label, reason=(
                f"budget: estimated {estimate.seconds:.0f} s, {max(left, 0):.0f} s of {budget:g} s left; "
                f"--budget-seconds {_round_up(spent + estimate.seconds)} would include it")))
        else:
            begin = time.perf_counter()
            request: dict[str, Any] = {
                "path": model.path, "auto_class": auto_class_name(model), "from_pretrained": option.from_pretrained,
                "generative": model.generative, "repeats": REPEATS, "trust_remote_code": model.trust_remote_code,
                "workloads": {w.name: w.model_dump()},
            }
            if config is not None:
                request.update(random_config=config, layers=layers)
            result = run_child("advisor.prove.bench_worker", request, child_timeout)
            seconds = time.perf_counter() - begin
            measured = ((result.get("workloads") or {}).get(w.name) or {}) if result.get("ok") else {}
            value = measured.get(w.metric)
            if value:
                timed.append(TuneRow(label=option.label, value=float(value), spread=measured.get("repeat_spread"),
                                     seconds=seconds))
                _calibrate(tp.calibration, option, estimate, result, measured, seconds,
                           lambda o: modelled_timed_seconds(o, model, w, layers), load_bytes(option, model, layers))
            elif child_timeout < timeout and str(result.get("error", "")).startswith("timed out"):
                outcome = "stopped"
                skipped.append(TuneMiss(label=option.label, reason=(
                    f"stopped at the budget: still running {seconds:.0f} s after it started, at {budget:g} s + "
                    f"{GRACE_SECONDS:g} s grace (estimated {estimate.seconds:.0f} s)")))
            else:
                outcome = "failed"
                failed.append(TuneMiss(label=option.label, error=result.get("error") or "no measurement"))
        estimates.append(TuneEstimate(**estimate.model_dump(), position=position + 1, order_reason=why,
                                      outcome=outcome, measured_seconds=seconds))
    elapsed = time.perf_counter() - start
    if not options:  # say why there was nothing to time, not an empty table
        failed.append(TuneMiss(label="(no viable candidate)", error=plan.verdict or "the planner found no option"))
    timed.sort(key=lambda r: r.value, reverse=True)
    static = plan.chosen.label if plan.chosen else None
    winner = timed[0].label if timed else None
    static_value = next((r.value for r in timed if r.label == static), None)
    run = f"tune-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    notes: list[str] = []
    recorded = 0
    if record and timed:
        store = store or MeasurementStore()
        versions = versions_of(env)
        today = datetime.now(timezone.utc).date().isoformat()
        recorded = store.record(
            Measurement(key=MeasurementKey(**versions.model_dump(), model_type=model.model_type,
                                           shape=shape_signature(model), workload=w.name, candidate=r.label),
                        metric=w.metric, value=r.value, spread=r.spread, measured_at=today, run=run, layers=layers)
            for r in timed)
        notes += store.notes
        if recorded:
            notes.append(f"recorded {recorded} measurement(s) in {store.path}")
    return TuneReport(
        run=run, model=model.display, device=versions_of(env).gpu, workload=w.name, metric=w.metric,
        weights="random weights built on the device" if config is not None else f"checkpoint {model.path}",
        layers_run=layers or model.num_layers, layers_total=model.num_layers, depth_note=tp.depth_note,
        budget_seconds=budget, elapsed_seconds=elapsed, ranking=timed, failed=failed, skipped=skipped,
        static_choice=static, winner=winner,
        static_ratio=(static_value / timed[0].value) if static_value and timed else None,
        recorded=recorded, notes=notes, estimates=estimates, budget_note=note,
    )


def _cpu_load() -> float:
    """Runnable processes per core over the last minute: a CPU child shares its cores with them."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # not available on this platform
        return 1.0


def _calibrate(calibration: Calibration, option: PlanOption, estimate: CandidateCost, result: dict[str, Any],
               measured: dict[str, Any], seconds: float, modelled: Callable[[PlanOption], float], weights: int) -> None:
    """What a finished child measured becomes the basis of the next estimates: its start and load always, its timed
    runs while no candidate without a compile has been timed (a compile estimate taken out is less certain)."""
    load = float(result.get("load_seconds") or 0.0)
    run = float(measured.get("run_seconds") or 0.0)
    calibration.start = max(seconds - load - run, 0.5)
    if load > 0 and weights > 0:
        calibration.load, calibration.load_bytes, calibration.load_label = load, weights, option.label
    if run > 0 and (calibration.timed is None or (calibration.compiled and not estimate.compile)):
        calibration.timed = max(run - estimate.compile, 0.3 * run)
        calibration.timed_modelled = modelled(option)
        calibration.timed_label = option.label
        calibration.compiled = estimate.compile > 0

