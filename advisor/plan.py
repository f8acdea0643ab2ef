"""Enumerate from_pretrained candidates, run every rule on each, reject the impossible, rank the rest.

Every reason is collected before deciding: a candidate's rejection lists all its failing rules, and when
nothing is viable the caller gets all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.emit import from_pretrained_json, python_snippet, to_kwargs
from advisor.facts import SCHEMA_VERSION, Environment, TorchInfo, known
from advisor.findings import Finding, Severity
from advisor.knowledge import Knowledge, load_knowledge, version_matches
from advisor.memory import GiB, MemoryEstimate, estimate_memory, max_memory_map
from advisor.model import ModelSpec
from advisor.ranking import RankingAdvice, rerank
from advisor.rules import run_candidate_rules, run_environment_rules
from advisor.rules.base import DTYPES, QUANTIZATIONS, Candidate, Context
from advisor.rules.planning import memory_fit, memory_fix, support_unknown
from advisor.support import attention_support

__all__ = ["PlanRequest", "PlanOption", "Rejection", "Recommendation", "make_plan", "evaluate", "Evaluation"]


class PlanRequest(BaseModel):
    """What the user constrained; `auto` leaves the choice to the planner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantize: Literal["auto", "none", "8bit", "4bit"] = "auto"
    attn: str | None = None
    batch: int = Field(1, ge=1)
    seq_len: int | None = Field(None, ge=1)
    prompt_len: int | None = Field(None, ge=1)  # the longest single prefill; default seq_len
    ignore: tuple[str, ...] = ()
    prefer: Literal["speed", "quality", "memory"] = "quality"  # issue 12: advisor/ranking.py, docs/prefer.md
    measurements: bool = True  # use the measurement store and the shipped measurements (issue 12)


class PlanOption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    candidate: Candidate
    from_pretrained: dict[str, Any]
    memory: MemoryEstimate
    findings: list[Finding]


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    option: str
    rule: str
    reason: str
    fix: str
    candidates: int = 1


class Recommendation(BaseModel):
    """The plan: the chosen kwargs, why, the ranked alternatives and every rejected option with its reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    model: ModelSpec
    target: str
    transformers: str | None
    batch: int
    seq_len: int
    chosen: PlanOption | None
    from_pretrained: dict[str, Any] | None
    memory: MemoryEstimate | None
    alternatives: list[PlanOption]
    rejected: list[Rejection]
    findings: list[Finding]
    attention_support: dict[str, bool]
    attention_support_source: str
    tokenizer: dict[str, Any]
    onnxruntime: dict[str, Any]
    python: str | None
    ranking: RankingAdvice | None = None  #: prefer and measurements (issue 12)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Kwargs ready for `AutoModel...from_pretrained(model, **kwargs)` (torch dtypes, BitsAndBytesConfig)."""
        if self.from_pretrained is None:
            raise ValueError("no viable configuration: see .rejected")
        return to_kwargs(self.from_pretrained)


class Evaluation(BaseModel):
    """One candidate judged: its findings and memory, viable or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate: Candidate
    findings: list[Finding]
    memory: MemoryEstimate
    max_memory: dict[int, str] | None = None

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.FAIL]

    @property
    def viable(self) -> bool:
        return not self.failures


def default_seq_len(model: ModelSpec, requested: int | None) -> int:
    return requested or min(4096, model.max_positions or 4096)


def make_context(
    model: ModelSpec, env: Environment, knowledge: Knowledge, *, batch: int = 1, seq_len: int | None = None,
    prompt_len: int | None = None,
) -> Context:
    support, source = attention_support(model, env, knowledge)
    return Context(
        env=env, knowledge=knowledge, model=model, support=support, support_source=source,
        batch=batch, seq_len=default_seq_len(model, seq_len), prompt_len=prompt_len,
    )


def _memory_finding(ctx: Context, c: Candidate, memory: MemoryEstimate) -> Finding | None:
    if memory.fits:
        return None
    where = f"{len(ctx.gpus)} x {ctx.gpus[0].name}" if c.placement != "cpu" and ctx.gpus else "host RAM"
    if c.placement == "gpu" and ctx.gpus:
        where = f"1 x {ctx.gpus[0].name}"
    option = c.quantization if c.quantization != "none" else c.dtype
    return memory_fit.finding(
        Severity.FAIL,
        f"{c.dtype}{'' if c.quantization == 'none' else ' + bnb ' + c.quantization} needs "
        f"{memory.total_bytes / GiB:.1f} GiB "
        f"(weights {memory.weights_bytes / GiB:.1f}, KV cache {memory.kv_cache_bytes / GiB:.1f}, "
        f"activations {memory.activation_bytes / GiB:.1f}, overhead {memory.overhead_bytes / GiB:.1f}); "
        f"{where} has {memory.budget_bytes / GiB:.1f} GiB",
        detected=f"{memory.total_bytes / GiB:.1f} GiB needed", required=f"<= {memory.budget_bytes / GiB:.1f} GiB",
        option=option, fix=memory_fix(c, quantization_helps=ctx.model is None or ctx.model.quantizable_note is None),
    )


def evaluate(ctx: Context, c: Candidate, ignore: Sequence[str] = ()) -> Evaluation:
    """All rule findings plus the memory verdict for one candidate."""
    assert ctx.model is not None
    gpus = ctx.gpus[:1] if c.placement == "gpu" else ctx.gpus if c.placement == "multi-gpu" else ()
    host = known(ctx.env.host.ram_available_bytes) or known(ctx.env.host.ram_total_bytes)
    memory = estimate_memory(
        ctx.model, dtype=c.dtype, quantization=c.quantization, attn=c.attn,
        batch=ctx.batch, seq_len=ctx.seq_len, gpus=gpus, host_bytes=host, prompt_len=ctx.prompt_len,
    )
    findings = run_candidate_rules(ctx, c)
    mem = _memory_finding(ctx, c, memory)
    if mem is not None:
        findings.append(mem)
    findings = [f for f in findings if f.code not in ignore]
    max_memory = max_memory_map(memory, gpus) if c.placement == "multi-gpu" else None
    return Evaluation(candidate=c, findings=findings, memory=memory, max_memory=max_memory)


def _candidates(ctx: Context, request: PlanRequest) -> Iterable[Candidate]:
    impls = [request.attn] if request.attn else list(ctx.knowledge.attention_impls)
    dtypes = [request.dtype] if request.dtype != "auto" else list(DTYPES)
    quants = [request.quantize] if request.quantize != "auto" else list(QUANTIZATIONS)
    torch = ctx.torch
    has_gpu = bool(ctx.gpus) and (torch is None or torch.cuda is not None or torch.hip is not None or torch.assumed)
    placements: list[Literal["gpu", "multi-gpu", "cpu"]] = ["cpu"]
    if ctx.gpus:
        placements = ["gpu", "multi-gpu"] if len(ctx.gpus) > 1 else ["gpu"]
        if not has_gpu:
            placements = ["gpu"]  # keep the GPU plan so LIB003 explains why it cannot run
    for placement in placements:
        for quant in quants:
            for dtype in dtypes:
                if quant != "none" and dtype == "float32":
                    continue  # bitsandbytes with float32 compute is slow and pointless
                for attn in impls:
                    yield Candidate(attn=attn, dtype=dtype, quantization=quant, placement=placement)  # type: ignore[arg-type]


def _rank(ctx: Context, e: Evaluation) -> tuple[int, ...]:
    c = e.candidate
    quant = QUANTIZATIONS.index(c.quantization)
    placement = {"gpu": 0, "multi-gpu": 1, "cpu": 2}[c.placement]
    warnings = sum(1 for f in e.findings if f.severity is Severity.WARN)
    dtype_order = ("float32", "bfloat16", "float16") if c.placement == "cpu" else ("bfloat16", "float16", "float32")
    req = ctx.knowledge.attention_requirement(c.attn)
    speed = req.speed_rank if req is not None else 99
    if c.placement == "cpu" and c.attn == "flex_attention":
        speed = 99  # on the CPU, flex compiles C++ through inductor: slow, and fails without a toolchain
    return (quant, placement, warnings, dtype_order.index(c.dtype), speed)


def _rejections(failed: list[Evaluation]) -> list[Rejection]:
    """One entry per (option, rule): the same reason repeated for every dtype would only be noise."""
    merged: dict[tuple[str, str], Rejection] = {}
    for e in failed:
        for f in e.failures:
            key = (f.option or e.candidate.attn, f.code)
            if key in merged:
                merged[key] = merged[key].model_copy(update={"candidates": merged[key].candidates + 1})
            else:
                merged[key] = Rejection(option=key[0], rule=f.code, reason=f.message, fix=f.fix)
    return list(merged.values())


def _tokenizer_advice(model: ModelSpec) -> dict[str, Any]:
    if model.generative and not model.is_encoder_decoder:
        return {"padding_side": "left"}
    return {}


def auto_class_name(model: ModelSpec) -> str:
    arch = model.architecture or ""
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return "AutoModelForCausalLM"
    if model.is_encoder_decoder and "Speech" in arch or model.model_type == "whisper":
        return "AutoModelForSpeechSeq2Seq"
    if model.is_encoder_decoder:
        return "AutoModelForSeq2SeqLM"
    if arch.endswith("ForSequenceClassification"):
        return "AutoModelForSequenceClassification"
    return "AutoModel"


def _onnxruntime_advice(ctx: Context, model: ModelSpec) -> dict[str, Any]:
    """Whether the Optimum + ONNX Runtime path of the guide is usable here, and the call to make."""
    env = ctx.env
    reasons = []
    onnx = env.library("optimum-onnx")
    if not onnx.installed:
        reasons.append("optimum-onnx is not installed (optimum >= 2.0 moved ONNX Runtime support there)")
    else:
        for row in ctx.knowledge.constraints_for("transformers", ctx.versions()):
            if row.when_library == "optimum-onnx" and not version_matches(env.version_of("transformers"), row.specifier):
                reasons.append(row.message + f"; installed transformers is {env.version_of('transformers')}")
    providers: list[str] = []
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        found = env.library(dist).details.get("providers")
        if isinstance(found, list):
            providers = found
            break
    if not (env.library("onnxruntime").installed or env.library("onnxruntime-gpu").installed):
        reasons.append("onnxruntime / onnxruntime-gpu is not installed")
    gpu_providers = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider")]
    if ctx.gpus and not gpu_providers and providers:
        reasons.append(f"onnxruntime has no GPU execution provider (available: {', '.join(providers)}); install onnxruntime-gpu")
    provider = gpu_providers[0] if gpu_providers else "CPUExecutionProvider"
    auto = auto_class_name(model).replace("AutoModel", "ORTModel")
    return {
        "available": not reasons,
        "reasons": reasons,
        "provider": provider,
        "call": f'{auto}.from_pretrained("{model.name}", export=True, provider="{provider}")',
    }


def make_plan(
    model: ModelSpec, env: Environment, request: PlanRequest | None = None, *, knowledge: Knowledge | None = None
) -> Recommendation:
    """Judge every candidate and pick the best viable one."""
    request = request or PlanRequest()
    knowledge = knowledge or load_knowledge()
    ctx = make_context(model, env, knowledge, batch=request.batch, seq_len=request.seq_len,
                       prompt_len=request.prompt_len)
    env_findings = [f for f in run_environment_rules(ctx) if f.code not in request.ignore]
    blocking = [f for f in env_findings if f.severity is Severity.FAIL]
    evaluations = [evaluate(ctx, c, request.ignore) for c in _candidates(ctx, request)]
    viable = sorted((e for e in evaluations if e.viable and not blocking), key=lambda e: _rank(ctx, e))
    failed = [e for e in evaluations if not e.viable]
    tf_version = env.version_of("transformers")
    options = [
        PlanOption(
            label=e.candidate.label(),
            candidate=e.candidate,
            from_pretrained=from_pretrained_json(e.candidate, transformers_version=tf_version, max_memory=e.max_memory),
            memory=e.memory,
            findings=[f for f in e.findings if f.severity is not Severity.OK],
        )
        for e in viable
    ]
    # issue 12: the one point where measurements and --prefer re-rank (advisor/ranking.py)
    options, ranking = rerank(options, model, env, prefer=request.prefer, batch=request.batch,
                              measurements=request.measurements)
    chosen = options[0] if options else None
    tokenizer = _tokenizer_advice(model)
    python = None
    if chosen is not None:
        python = python_snippet(
            model_name=model.path or model.name, auto_class=auto_class_name(model), kwargs=chosen.from_pretrained,
            tokenizer=tokenizer, generative=model.generative,
        )
    findings = env_findings + (chosen.findings if chosen else [])
    if not ctx.support:
        findings.append(support_unknown.finding(
            Severity.WARN, f"{model.model_type} is not in {ctx.support_source}; only eager is certain"
        ))
    return Recommendation(
        ok=chosen is not None,
        model=model,
        target=env.description or env.source,
        transformers=tf_version,
        batch=request.batch,
        seq_len=ctx.seq_len,
        chosen=chosen,
        from_pretrained=chosen.from_pretrained if chosen else None,
        memory=chosen.memory if chosen else None,
        alternatives=options[1:],
        rejected=_rejections(failed) + [
            Rejection(option="environment", rule=f.code, reason=f.message, fix=f.fix) for f in blocking
        ],
        findings=findings,
        attention_support=ctx.support,
        attention_support_source=ctx.support_source,
        tokenizer=tokenizer,
        onnxruntime=_onnxruntime_advice(ctx, model),
        python=python,
        ranking=ranking,
    )


def torch_summary(env: Environment) -> str:
    t = env.torch
    if not isinstance(t, TorchInfo):
        return str(t)
    build = f"CUDA {t.cuda}" if t.cuda else f"ROCm {t.hip}" if t.hip else "CPU"
    return f"torch {t.version} ({build})"
