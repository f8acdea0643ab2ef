"""What one `tune` candidate will cost before it starts (issue 27): child start, load, first-call compile, timed runs.

Issue 27: the default 60 s budget skipped flex_attention on gpt-oss although it was the static choice, and on the
CPU `--budget-seconds 30` ran for 302 s: the budget guessed a candidate's time from the slowest child so far, and
nothing stopped a child that ran long. Every part here is an estimate and names its basis:
- child start (interpreter, torch and transformers imports, CUDA init, teardown): a stated default until a child
  of this run has been timed, then that child's measured start;
- load: the weights' bytes at a stated rate (random weights are built on the device, a checkpoint is read from
  disk), or the previous candidate's measured load in this run scaled by bytes;
- compile (flex_attention's inductor compile, flash-attn-4's JIT): the shipped first-call rows of
  data/measurements/*.json for this GPU (or its generation), this model's row where one matches, else the
  slowest measured model; with no row, the stated default per kernel;
- timed runs: the bench worker's warm-ups and repeats over the workload's tokens, at a rate from the parameter
  count (FLOPs, weight bytes per decode step, a per-layer step overhead); once a candidate of this run has been
  timed, its measured time scales the others (by the ratio of their modelled times).
No torch here: the parent decides before any child starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from advisor.facts import Environment
from advisor.knowledge.measured_runs import first_calls
from advisor.knowledge.measurements import Measurement, pick, shipped_measurements, versions_of
from advisor.model.spec import ModelSpec, shape_signature
from advisor.plan.options import PlanOption
from advisor.prove.bench import Workload
from advisor.prove.bench_worker import TIMED_BUDGET_SECONDS, WARM_SECONDS

__all__ = ["REPEATS", "CandidateCost", "Calibration", "estimate_cost", "first_call_rows", "load_bytes",
           "modelled_timed_seconds"]

# Stated defaults (used only until this run has timed a child). CPU: this box (2 shared cores, Xeon with AMX);
# GPU: H100-class, the card of the shipped measurements.
# tiny Llama child on this box: 2.7 s idle, ~30 s under load; H100 (docs/benchmarks/tune/tune-budget-h100.md): the
# first child of a run, Llama-2-7B sdpa, took 10.8-11.0 s with its load and timed runs (estimated 2 + 2 s)
CHILD_START_SECONDS = {"cpu": 10.0, "gpu": 10.0}
LOAD_FIXED_SECONDS = 1.5  # the model class's first import and from_config: 1.2 s for a tiny Llama on this box
LOAD_BYTES_PER_SECOND = {"random-cpu": 0.5e9, "random-gpu": 20e9, "checkpoint": 0.5e9}
FLOPS = {("cpu", "float32"): 50e9, ("cpu", "16bit"): 50e9,  # matmul here: 98 GFLOP/s fp32, 545 bf16 (AMX), 101 fp16
         ("gpu", "float32"): 25e12, ("gpu", "16bit"): 200e12}  # H100 prefill of Llama-2-7B ran at ~400 TFLOP/s
BYTES_PER_SECOND = {"cpu": 10e9, "gpu": 1.5e12}  # weights read once per decode step
STEP_SECONDS = {"cpu": (0.5e-3, 0.25e-3), "gpu": (2e-3, 0.3e-3)}  # per forward: fixed + per layer (launches, Python)
FIRST_CALL_DEFAULT = {"flex_attention": 30.0, "flash_attention_4": 11.0}  # the shipped H100 maxima: 29.95 s, 10.92 s
REPEATS = 5  # tune's timed repeats per call (bench_worker._timed; a slow call stops at three past its budget)


class CandidateCost(BaseModel):
    """One candidate's estimated seconds, by part, each with its basis; `seconds` is their sum."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    seconds: float
    start: float
    load: float
    compile: float
    timed: float
    basis: dict[str, str]


class Calibration(BaseModel):
    """What this run has measured so far: the last child's start and load, and a reference for the timed runs."""

    model_config = ConfigDict(extra="forbid")

    start: float | None = None
    load: float | None = None
    load_bytes: int | None = None
    load_label: str | None = None
    timed: float | None = None  # the reference child's warm-ups and repeats, its compile taken out
    timed_modelled: float | None = None  # what the model said for that child
    timed_label: str | None = None
    compiled: bool = False  # the reference had a compile taken out


def _device(option: PlanOption) -> str:
    return "cpu" if option.candidate.placement == "cpu" else "gpu"


def _layers_share(model: ModelSpec, layers: int | None) -> float:
    return min(1.0, layers / model.num_layers) if layers and model.num_layers else 1.0


def _body_and_head(model: ModelSpec, layers: int | None) -> tuple[float, float]:
    """Parameters every token passes through (the layers, scaled to those run; the embedding lookup is no matmul),
    and the LM head's, which generate() applies to the last position only."""
    emb = model.vocab_size * model.hidden_size
    body = max(model.param_count - 2 * emb, model.param_count // 2)
    return body * _layers_share(model, layers), float(emb if model.generative else 0)


def load_bytes(option: PlanOption, model: ModelSpec, layers: int | None) -> int:
    """The weights a child builds or reads: the estimate's bytes, scaled to the layers run."""
    return int(option.memory.weights_bytes * _layers_share(model, layers))


def modelled_timed_seconds(option: PlanOption, model: ModelSpec, workload: Workload, layers: int | None) -> float:
    """bench_worker's warm-ups and repeats for this workload at the rates above (see the module docstring)."""
    device = _device(option)
    rate = FLOPS[(device, "float32" if option.candidate.dtype == "float32" else "16bit")]
    n_layers = max(1, round(model.num_layers * _layers_share(model, layers)))
    fixed, per_layer = STEP_SECONDS[device]
    step = fixed + per_layer * n_layers
    body, head = _body_and_head(model, layers)
    b, s = workload.batch, workload.prompt
    prefill = (2 * body * b * s + 2 * head * b + 4 * n_layers * b * s * s * model.hidden_size) / rate + step
    weights = option.memory.weights_bytes * _layers_share(model, layers)
    decode = max(2 * (body + head) * b / rate, weights / BYTES_PER_SECOND[device]) + step
    if model.generative and workload.new_tokens > 1:
        full = prefill + (workload.new_tokens - 1) * decode
        return _warm(prefill) + _warm(full) + _repeats(prefill) + _repeats(full)
    return _warm(prefill) + _repeats(prefill)


def _warm(call: float) -> float:
    return math.ceil(WARM_SECONDS / call) * call if call > 0 else WARM_SECONDS


def _repeats(call: float, repeats: int = REPEATS) -> float:
    n, total = 0, 0.0
    while n < repeats and (n < min(3, repeats) or total < TIMED_BUDGET_SECONDS):
        n, total = n + 1, total + call
    return total


def first_call_rows(env: Environment, workload: Workload) -> list[Measurement]:
    """The shipped rows of this GPU (or its generation) for the workload the shipped script timed as this one."""
    versions = versions_of(env)
    if versions.gpu == "CPU":
        return []
    shipped = "prefill" if workload.name == "prefill" else "batch"  # the shipped workloads: prefill, batched decode
    rows, _ = pick([m for m in shipped_measurements() if m.key.workload == shipped], versions)
    return rows


def _compile(option: PlanOption, model: ModelSpec, rows: Sequence[Measurement]) -> tuple[float, str]:
    attn = option.candidate.attn
    if attn not in FIRST_CALL_DEFAULT:
        return 0.0, "none: no compiled kernel"
    workload = rows[0].key.workload if rows else ""
    found = next((f for f in first_calls(rows, model.model_type, shape_signature(model), workload)
                  if f.attn == attn), None)
    if found is not None and found.this_model is not None:
        return found.this_model, f"measured first call of this model on {rows[0].key.gpu} (data/measurements)"
    if found is not None:
        return found.high, (f"the slowest measured first call of {found.rows} model(s) on {rows[0].key.gpu} "
                            f"({found.low:.0f}-{found.high:.0f} s, data/measurements); this model unmeasured")
    return FIRST_CALL_DEFAULT[attn], f"default for {attn} (no measured first call for this GPU)"


def estimate_cost(option: PlanOption, model: ModelSpec, workload: Workload, *, layers: int | None,
                  checkpoint: bool, rows: Sequence[Measurement] = (), calibration: Calibration | None = None,
                  cpu_load: float = 1.0) -> CandidateCost:
    """This candidate's seconds before it starts: measured figures of this run where there are some, else defaults.
    `cpu_load`: how many runnable processes share each core of this CPU (at least 1), which slows a CPU child's
    compute by that factor until one has been timed (on this 2-core box at a load of 7.8, gpt2's decode child ran
    296 s against 28 s modelled at the idle rates)."""
    cal = calibration or Calibration()
    device = _device(option)
    basis: dict[str, str] = {}
    if cal.start is not None:
        start, basis["start"] = cal.start, "measured: the last child's start and teardown in this run"
    else:
        start, basis["start"] = CHILD_START_SECONDS[device], f"default for the {device.upper()} (imports, teardown)"
    weights = load_bytes(option, model, layers)
    if cal.load is not None and cal.load_bytes:
        load = cal.load * weights / cal.load_bytes
        basis["load"] = f"measured: {cal.load_label}'s load in this run ({cal.load:.1f} s), scaled by weight bytes"
    else:
        kind = "checkpoint" if checkpoint else f"random-{device}"
        rate = LOAD_BYTES_PER_SECOND[kind]
        load = LOAD_FIXED_SECONDS + weights / rate
        where = kind.replace("-", " weights on the ")
        basis["load"] = f"{weights / 1e9:.2f} GB at {rate / 1e9:g} GB/s ({where}), default"
    compile_s, basis["compile"] = _compile(option, model, rows)
    modelled = modelled_timed_seconds(option, model, workload, layers)
    if cal.timed is not None and cal.timed_modelled:
        timed = cal.timed * modelled / cal.timed_modelled
        basis["timed"] = (f"measured: {cal.timed_label}'s timed runs in this run ({cal.timed:.1f} s), "
                          "scaled by the model")
    else:
        shared = max(cpu_load, 1.0) if device == "cpu" else 1.0
        timed = modelled * shared
        basis["timed"] = (f"modelled from {model.param_count / 1e6:.1f}M parameters and {workload.batch} x "
                          f"{workload.prompt} + {workload.new_tokens} tokens at default {device.upper()} rates"
                          + (f", slowed {shared:.1f}x by the load on this CPU" if shared > 1 else ""))
    total = start + load + compile_s + timed
    return CandidateCost(label=option.label, seconds=round(total, 1), start=round(start, 1), load=round(load, 1),
                         compile=round(compile_s, 1), timed=round(timed, 1), basis=basis)
