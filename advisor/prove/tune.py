"""`advisor tune`: time the viable candidates on this GPU, on the model's real shapes, within a time budget.

Weights are random and built on the device (advisor/prove/random_model.py), so no checkpoint is needed;
`--checkpoint` loads the model's own weights instead. Each candidate runs in a child through the benchmark
worker (advisor/prove/bench_worker.py, advisor/isolation/child.py). Candidates run in the planner's static order, the
static choice's dtype group first. The budget covers the whole command, probe and plan included: a candidate
starts only if the time spent plus its expected time fits (the slowest child so far; for flex_attention, which
compiles on its first call, three times that until one has run: 36 s against 13 s for sdpa on a 7B on the H100),
and the rest are skipped and named. Depth is cut to a few layers only for model types whose truncated ranking
matched the full-depth ranking on the H100 (data/measurements/*.json `depth_checks`). The results go to the
measurement store, where recommend, check and doctor find them.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.errors import UsageError
from advisor.facts import SCHEMA_VERSION, Environment
from advisor.io.read_input import read_json_file
from advisor.isolation.child import run_child
from advisor.knowledge import load_knowledge
from advisor.knowledge.measurements import (
    Measurement,
    MeasurementKey,
    MeasurementStore,
    depth_checks,
    versions_of,
)
from advisor.model.spec import ModelSpec, shape_signature
from advisor.plan.options import PlanOption, PlanRequest
from advisor.plan.recommend import auto_class_name, make_plan
from advisor.prove.bench import WORKLOADS, fitted_workload

__all__ = ["TRUNCATED_LAYERS", "TuneReport", "run_tune"]

TRUNCATED_LAYERS = 4
REPEATS = 5


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


def _order(options: list[PlanOption]) -> list[PlanOption]:
    """The static choice's dtype/quantization/placement group first, then the rest, each in static order."""
    if not options:
        return []
    first = options[0].candidate
    same = [o for o in options if (o.candidate.dtype, o.candidate.quantization, o.candidate.placement)
            == (first.dtype, first.quantization, first.placement)]
    ordered = same + [o for o in options if o not in same]
    # NOTE: flex_attention compiles on its first call (tens of seconds for a 7B): timed last in its group so a
    # budget spent on compiling never crowds out eager, the candidate most often faster than the static choice
    return sorted(ordered, key=lambda o: (o not in same, o.candidate.attn == "flex_attention"))


def run_tune(model: ModelSpec, env: Environment, config: dict[str, Any] | None, *, workload: str = "prefill",
             budget: float = 60.0, store: MeasurementStore | None = None, record: bool = True,
             timeout: float = 600.0, started: float | None = None, simulate: bool = False,
             cache: bool = True) -> TuneReport:
    """Time the candidates; `config` None means load the checkpoint at `model.path`; `simulate` as --simulate,
    `cache=False` as --no-cache."""
    if workload not in WORKLOADS:
        raise UsageError(f"unknown workload {workload!r}; choose decode, prefill or batch")
    w = fitted_workload(workload, model.max_positions)
    plan = make_plan(model, env, PlanRequest(batch=w.batch, seq_len=w.prompt + w.new_tokens, prompt_len=w.prompt,
                                             measurements=False, simulate=simulate, cache=cache))
    options = ([plan.chosen] if plan.chosen else []) + list(plan.alternatives)
    skipped: list[TuneMiss] = []
    runnable = []
    for option in _order(options):
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
    start = started if started is not None else time.perf_counter()  # the command's start: probe and plan count
    slowest = 0.0
    compiled = False  # has a flex_attention child run (and shown what its compile costs)?
    timed: list[TuneRow] = []
    failed: list[TuneMiss] = []
    for option in runnable:
        spent = time.perf_counter() - start
        flex = option.candidate.attn == "flex_attention"
        expected = slowest * (3 if flex and not compiled else 1)
        if (timed or failed) and spent + expected > budget:
            skipped.append(TuneMiss(label=option.label, reason=f"budget: {spent:.0f} s spent, this candidate is "
                                                                f"expected to take {expected:.0f} s"))
            continue
        compiled = compiled or flex
        begin = time.perf_counter()
        request: dict[str, Any] = {
            "path": model.path, "auto_class": auto_class_name(model), "from_pretrained": option.from_pretrained,
            "generative": model.generative, "repeats": REPEATS, "trust_remote_code": model.trust_remote_code,
            "workloads": {w.name: w.model_dump()},
        }
        if config is not None:
            request.update(random_config=config, layers=layers)
        result = run_child("advisor.prove.bench_worker", request, timeout)  # the budget gates starts, never kills
        seconds = time.perf_counter() - begin
        slowest = max(slowest, seconds)
        measured = ((result.get("workloads") or {}).get(w.name) or {}) if result.get("ok") else {}
        value = measured.get(w.metric)
        if value:
            timed.append(TuneRow(label=option.label, value=float(value), spread=measured.get("repeat_spread"),
                                 seconds=seconds))
        else:
            failed.append(TuneMiss(label=option.label, error=result.get("error") or "no measurement"))
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
        layers_run=layers or model.num_layers, layers_total=model.num_layers, depth_note=depth_note,
        budget_seconds=budget, elapsed_seconds=elapsed, ranking=timed, failed=failed, skipped=skipped,
        static_choice=static, winner=winner,
        static_ratio=(static_value / timed[0].value) if static_value and timed else None,
        recorded=recorded, notes=notes,
    )

