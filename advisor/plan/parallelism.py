"""The parallelism dimension of a plan (issue 30): none, pipeline (`device_map`) or tensor parallel of size N.

Why: on several GPUs `device_map="auto"` places layers one after another, so one GPU works at a time;
tensor parallelism (`DistributedConfig(tp_size=N)` under torchrun) makes all of them work on every layer, but
only where the release and model type have a TP plan, the sizes divide, and the GPUs talk over NVLink. This
module weighs the two for the planner's chosen option and says why; the rules live in advisor/rules/parallel.py.
The workload (--workload, the request's `serving`) decides what TP's per-token gain must repay: a server pays
torchrun's N processes, their imports and the process group once, a one-shot job pays them before its one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.candidate import Candidate
from advisor.estimate.memory import estimate_memory
from advisor.estimate.per_rank import PerRankMemory, per_rank_memory
from advisor.facts import known
from advisor.findings import Finding, Severity
from advisor.knowledge.tp_costs import tp_fixed_cost
from advisor.knowledge.tp_plans import TpPlan, tp_plan_for
from advisor.numbers import size as fmt_size
from advisor.rules.base import Context
from advisor.rules.parallel import links_between, tensor_parallel_findings, tp_kwarg

__all__ = ["Parallelism", "TensorOption", "evaluate_tensor", "parallelism_for", "tensor_kwargs", "launch_line"]

KwargsOf = Callable[[Candidate], dict[str, Any]]  # the planner's from_pretrained JSON for a candidate

PREDICTION = "prediction, not measured"


class TensorOption(BaseModel):
    """Tensor parallel of one size for one candidate: its rule findings and per-rank memory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int
    candidate: Candidate
    findings: list[Finding]
    per_rank: PerRankMemory | None
    plan_source: str

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.FAIL]


class Parallelism(BaseModel):
    """The `parallelism` key of recommend and check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["none", "pipeline", "tensor"]
    size: int
    from_pretrained: dict[str, Any] | None = None
    launch: str | None = None  # the command line that starts the ranks (tensor only)
    reasons: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)  # the TP rules for the size considered
    per_rank: PerRankMemory | None = None
    tp_plan_source: str | None = None  # where the model type's TP plan was read
    python: str | None = Field(default=None, exclude=True)  # the torchrun script (recommend --format python)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.FAIL]


def launch_line(size: int, script: str = "script.py") -> str:
    return f"torchrun --nproc-per-node {size} {script}"


def tensor_kwargs(base: dict[str, Any], size: int, kwarg: str | None) -> dict[str, Any]:
    """The planner's kwargs with placement replaced by TP: device_map and max_memory are mutually exclusive with
    it (transformers raises ValueError), and each rank binds its own device from LOCAL_RANK."""
    kwargs = {k: v for k, v in base.items() if k not in ("device_map", "max_memory")}
    if kwarg == "tp_plan":
        kwargs["tp_plan"] = "auto"
    else:
        kwargs["distributed_config"] = {"tp_size": size, "tp_plan": "auto"}
    return kwargs


def evaluate_tensor(ctx: Context, c: Candidate, size: int, ignore: Sequence[str] = ()) -> TensorOption:
    """All TP rules and the per-rank memory for `size` ranks of candidate `c`."""
    assert ctx.model is not None
    plan: TpPlan = tp_plan_for(ctx.model.model_type, ctx.env.version_of("transformers"), ctx.knowledge.releases)
    gpu = bool(ctx.gpus)
    host = known(ctx.env.host.ram_available_bytes) or known(ctx.env.host.ram_total_bytes) or 0
    budget = (ctx.gpus[0].usable_memory_bytes or 0) if gpu else host
    whole = estimate_memory(ctx.model, dtype=c.dtype, quantization=c.quantization, attn=c.attn, batch=ctx.batch,
                            seq_len=ctx.seq_len, gpus=ctx.gpus[:1], host_bytes=host, prompt_len=ctx.prompt_len)
    per_rank = per_rank_memory(ctx.model, whole, plan, size=size, dtype=c.dtype, budget_bytes=budget, gpu=gpu) \
        if plan.exists else None
    findings = [f for f in tensor_parallel_findings(ctx, c, size, plan, per_rank) if f.code not in ignore]
    return TensorOption(size=size, candidate=c, findings=findings, per_rank=per_rank, plan_source=plan.cite)


def _tensor(option: TensorOption, ctx: Context, kwargs_of: KwargsOf, reasons: list[str]) -> Parallelism:
    kwarg, _ = tp_kwarg(ctx)
    return Parallelism(kind="tensor", size=option.size,
                       from_pretrained=tensor_kwargs(kwargs_of(option.candidate), option.size, kwarg),
                       launch=launch_line(option.size), reasons=reasons, findings=option.findings,
                       per_rank=option.per_rank, tp_plan_source=option.plan_source)


def _fits_line(option: TensorOption) -> str:
    r = option.per_rank
    assert r is not None
    return (f"tensor parallel {option.size} ({option.candidate.dtype}"
            f"{'' if option.candidate.quantization == 'none' else ' + ' + option.candidate.quantization}) needs "
            f"{fmt_size(r.total_bytes)} per rank of {fmt_size(r.budget_bytes)}")


def parallelism_for(ctx: Context, chosen: Candidate | None, kwargs_of: KwargsOf, *, tp: int | None,
                    prefer: str, serving: str = "server", ignore: Sequence[str] = ()) -> Parallelism:
    """The `parallelism` key: the size asked for with --tp, else the choice for the target's GPUs under the
    request's --prefer and --workload (`serving`: "server" or "one-shot")."""
    if chosen is None:
        return Parallelism(kind="none", size=1, reasons=["no configuration was chosen"])
    if tp is not None and tp > 1:
        return requested_tensor(ctx, chosen, tp, kwargs_of, ignore, serving=serving)
    return choose_parallelism(ctx, chosen, kwargs_of, prefer, ignore, serving=serving)


def requested_tensor(ctx: Context, c: Candidate, size: int, kwargs_of: KwargsOf,
                     ignore: Sequence[str] = (), *, serving: str = "server") -> Parallelism:
    """`--tp N`: that size or nothing, whatever the workload; its failing rules make the command exit 1."""
    option = evaluate_tensor(ctx, c, size, ignore)
    if option.failures:
        return Parallelism(kind="none", size=1, reasons=[f"tensor parallel {size} was asked for and is refused: "
                                                         + "; ".join(f"{f.message} ({f.code})" for f in option.failures)],
                           findings=option.findings, per_rank=option.per_rank, tp_plan_source=option.plan_source)
    one_shot = [_fixed_costs(size)] if serving == "one-shot" else []  # asked for: said, not overruled
    return _tensor(option, ctx, kwargs_of, [f"tensor parallel {size} as asked (--tp): {_fits_line(option)}",
                                              *one_shot, _launch_reason(size)])


def choose_parallelism(ctx: Context, chosen: Candidate, kwargs_of: KwargsOf, prefer: str,
                       ignore: Sequence[str] = (), *, serving: str = "server") -> Parallelism:
    """Pipeline or tensor for the planner's choice on several GPUs.

    server (a long-running process: the steady state counts): TP where it is allowed, fits and the GPUs have
    NVLink (when one GPU is enough, only for --prefer speed); device_map otherwise.
    one-shot (load, one batch, exit): device_map wherever the planner's choice fits, since TP's fixed costs come
    before the first token; TP only where it is the one way onto the GPUs (a plan that fell back to the CPU) or
    the one way the weights fit unquantized (device_map needed quantization; not with --prefer memory)."""
    n = len(ctx.gpus)
    if n < 2:
        return Parallelism(kind="none", size=1, reasons=["one GPU" if n else "a CPU target: one process"])
    link, why = links_between(ctx, n)
    options = [evaluate_tensor(ctx, c, size, ignore) for size in _sizes(n)
               for c in dict.fromkeys([chosen.model_copy(update={"quantization": "none", "placement": "multi-gpu"}),
                                       chosen.model_copy(update={"placement": "multi-gpu"})])]
    good = next((o for o in options if not o.failures), None)
    nearest = options[0]
    refused = "; ".join(f"{f.message} ({f.code})" for f in nearest.failures)
    one_shot = serving == "one-shot"
    if chosen.placement != "multi-gpu":  # one GPU is enough, or the plan fell back to the CPU
        where = "the CPU" if chosen.placement == "cpu" else "one GPU"
        wanted = chosen.placement == "cpu" or (prefer == "speed" and not one_shot)  # the CPU: TP is the way onto GPUs
        if good is not None and link == "nvlink" and wanted:
            return _tensor(good, ctx, kwargs_of, [
                f"the plan runs on {where}{', and --prefer speed' if prefer == 'speed' else ''}: "
                f"{_fits_line(good)}; {why}",
                f"each token reads 1/{good.size} of the weights per GPU: lower latency ({PREDICTION})",
                *_workload_reasons(serving, good.size, "tensor parallel is the one way onto the GPUs"),
                _launch_reason(good.size)])
        reason = f"the plan runs on {where}: no parallelism"
        more: list[str] = []
        if good is None:
            reason += f"; tensor parallel is refused: {refused}"
        elif link != "nvlink":
            reason += f"; tensor parallel {good.size} would fit, but {_no_nvlink(link, why)}"
        elif one_shot:
            reason += (f"; tensor parallel {good.size} is possible (NVLink) for lower latency, but not for "
                       "--workload one-shot (a server would take it with --prefer speed)")
            more = _workload_reasons(serving, good.size)
        else:
            reason += f"; tensor parallel {good.size} is possible (NVLink) for lower latency with --prefer speed"
        return Parallelism(kind="none", size=1, reasons=[reason, *more], findings=nearest.findings,
                           per_rank=nearest.per_rank, tp_plan_source=nearest.plan_source)
    pipeline = [f"device_map=\"auto\" spreads the layers over {n} GPUs: one GPU works at a time"]
    if good is None:
        return Parallelism(kind="pipeline", size=n, from_pretrained=kwargs_of(chosen),
                           reasons=[*pipeline, f"tensor parallel is refused: {refused}"], findings=nearest.findings,
                           per_rank=nearest.per_rank, tp_plan_source=nearest.plan_source)
    if link != "nvlink":
        return Parallelism(kind="pipeline", size=n, from_pretrained=kwargs_of(chosen),
                           reasons=[*pipeline, f"tensor parallel {good.size} would fit, but {_no_nvlink(link, why)}"],
                           findings=good.findings, per_rank=good.per_rank, tp_plan_source=good.plan_source)
    # TP unquantized where device_map needed quantization: the one way to keep the weights whole
    lifts = good.candidate.quantization == "none" and chosen.quantization != "none" and prefer != "memory"
    if one_shot and not lifts:
        return Parallelism(kind="pipeline", size=n, from_pretrained=kwargs_of(chosen), reasons=[
            *pipeline, *_workload_reasons(serving, good.size),
            f"a server (--workload server) would take tensor parallel {good.size}: it fits, {why}"],
            findings=good.findings, per_rank=good.per_rank, tp_plan_source=good.plan_source)
    return _tensor(good, ctx, kwargs_of, [
        f"{_fits_line(good)}; {why}",
        f"all {good.size} GPUs work on every layer instead of one at a time: lower latency than device_map "
        f"({PREDICTION})",
        *_workload_reasons(serving, good.size, f"device_map needs {chosen.quantization}; tensor parallel is the "
                                               f"one way {good.candidate.dtype} fits unquantized"),
        _launch_reason(good.size)])


def _launch_reason(size: int) -> str:
    return f"start it with `{launch_line(size)}`: without torchrun from_pretrained raises KeyError: 'RANK'"


def _fixed_costs(size: int) -> str:
    """TP's once-per-job costs, from the CPU-process measurement where one is shipped."""
    what = f"TP's fixed costs: torchrun starts {size} processes that each import torch and transformers and join a " \
           "process group"
    gpu = f"; on GPUs a CUDA context and NCCL setup per rank come on top ({PREDICTION})"
    cost = tp_fixed_cost()
    if cost is None:
        return f"{what} (not measured){gpu}"
    ranks = "" if cost.ranks == size else f" with {cost.ranks} ranks"
    return (f"{what}: +{cost.extra_seconds:.1f} s over one process{ranks}, measured on CPU processes "
            f"({cost.machine}; {cost.cite}){gpu}")


def _workload_reasons(serving: str, size: int, only_way: str = "") -> list[str]:
    """Why the workload takes TP (server; one-shot only where `only_way` says TP is the one way) or not."""
    if serving != "one-shot":
        return ["--workload server: a long-running process pays TP's fixed costs (torchrun, its processes' imports, "
                "the process group) once, then the steady state counts"]
    if only_way:
        return [f"--workload one-shot, yet {only_way}", _fixed_costs(size)]
    return ["--workload one-shot: a job that loads, runs one batch and exits pays TP's fixed costs before its first "
            f"token, and one batch is predicted not to win them back from TP's per-token gain ({PREDICTION}; "
            f"--tp {size} takes TP anyway)", _fixed_costs(size)]


def _no_nvlink(link: str, why: str) -> str:
    if link == "pcie":
        return f"{why}: its per-layer all-reduce is predicted to cancel the gain ({PREDICTION})"
    return f"whether NVLink joins the GPUs is unknown ({why}); probe the machine (`advisor probe`) to know"


def _sizes(n: int) -> list[int]:
    """TP sizes to try on n GPUs, largest first: n, then its divisors above 1."""
    return [s for s in range(n, 1, -1) if n % s == 0]
