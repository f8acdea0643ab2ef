"""Enumerate from_pretrained candidates, run every rule on each, reject the impossible, rank the rest.

Every reason is collected before deciding: a candidate's rejection lists all its failing rules, and when
nothing is viable the caller gets all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal

from advisor.candidate import DTYPES, QUANTIZATIONS, Candidate
from advisor.estimate.memory import MemoryEstimate, estimate_memory, max_memory_map
from advisor.estimate.selection import evaluate_selected
from advisor.facts import Environment, TorchInfo, known
from advisor.findings import Finding, Severity
from advisor.knowledge import Knowledge, load_knowledge, version_matches
from advisor.knowledge.quantizer_acceptance import QuantizerVerdict
from advisor.model.attention_support import attention_support
from advisor.model.spec import ModelSpec, has_tokenizer
from advisor.numbers import GiB, plural, size
from advisor.plan.emit import from_pretrained_json, python_snippet
from advisor.plan.headline import brief, fit
from advisor.plan.options import Evaluation, PlanOption, PlanRequest, Recommendation, Rejection
from advisor.plan.parallelism import Parallelism
from advisor.plan.ranking import rerank
from advisor.plan.verdict import RankedFix, group_label, headline_fix, rank_fixes
from advisor.rules import run_candidate_rules, run_environment_rules
from advisor.rules.base import Context
from advisor.rules.kernels import advice as kernel_advice
from advisor.rules.method_readiness import checkpoint_verdict
from advisor.rules.planning import memory_fit, memory_fix, support_unknown

__all__ = ["make_plan", "evaluate"]


def default_seq_len(model: ModelSpec, requested: int | None) -> int:
    return requested or min(4096, model.max_positions or 4096)


def make_context(
    model: ModelSpec, env: Environment, knowledge: Knowledge, *, batch: int = 1, seq_len: int | None = None,
    prompt_len: int | None = None, allow_download: bool = False,
) -> Context:
    support, source = attention_support(model, env, knowledge)
    from advisor.model.quantizable import at_release  # issue 17: the target release's bitsandbytes share

    model = at_release(model, env.version_of("transformers"), cache=knowledge.cache)
    return Context(
        env=env, knowledge=knowledge, model=model, support=support, support_source=source,
        batch=batch, seq_len=default_seq_len(model, seq_len), prompt_len=prompt_len, allow_download=allow_download,
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
        f"{c.dtype}{'' if c.quantization == 'none' else ' + ' + c.label().split(' + ')[1].split(' / ')[0]} needs "
        f"{memory.total_bytes / GiB:.1f} GiB "
        f"(weights {memory.weights_bytes / GiB:.1f}, KV cache {memory.kv_cache_bytes / GiB:.1f}, "
        f"activations {memory.activation_bytes / GiB:.1f}, overhead {memory.overhead_bytes / GiB:.1f}); "
        f"{where} has {memory.budget_bytes / GiB:.1f} GiB",
        detected=f"{memory.total_bytes / GiB:.1f} GiB needed", required=f"<= {memory.budget_bytes / GiB:.1f} GiB",
        option=option, fix=memory_fix(c, gpu_count=len(ctx.gpus),
                                      quantization_helps=ctx.model is None or ctx.model.quantizable_note is None),
    )


def _as_loaded(ctx: Context, c: Candidate) -> ModelSpec:
    """The model as this candidate loads it: a pre-quantized checkpoint the target's release dequantizes here
    (executed: FP8 without a GPU or below compute capability 8.9 in 5.x, MXFP4 without triton or kernels, ...)
    is weighed unquantized (issue 28: a fallback is a plan)."""
    assert ctx.model is not None
    pre = ctx.model.checkpoint_quantization
    if pre is None:
        return ctx.model
    verdict = checkpoint_verdict(ctx.env, pre.method_key, c.placement, ctx.weakest_cc, cache=ctx.cache)
    if not isinstance(verdict, QuantizerVerdict) or verdict.case.verdict != "dequantizes":
        return ctx.model
    return ctx.model.model_copy(update={"checkpoint_quantization": None})


def evaluate(ctx: Context, c: Candidate, ignore: Sequence[str] = (), *, simulate: bool = True,
             always_simulate: bool = False, cache: bool = True) -> Evaluation:
    """All rule findings plus the memory verdict for one candidate (`simulate=False`: closed form only;
    `always_simulate`: the request's --simulate; `cache=False`: its --no-cache)."""
    assert ctx.model is not None
    gpus = ctx.gpus[:1] if c.placement == "gpu" else ctx.gpus if c.placement == "multi-gpu" else ()
    host = known(ctx.env.host.ram_available_bytes) or known(ctx.env.host.ram_total_bytes)
    findings = run_candidate_rules(ctx, c)
    backends = ctx.torch.sdpa_backends if ctx.torch is not None else {}
    memory = estimate_memory(
        _as_loaded(ctx, c), dtype=c.dtype, quantization=c.quantization, attn=c.attn,
        batch=ctx.batch, seq_len=ctx.seq_len, gpus=gpus, host_bytes=host, prompt_len=ctx.prompt_len,
        # simulated only where memory can still decide: a candidate another rule rejects keeps the closed form
        simulate=simulate and not any(f.severity is Severity.FAIL for f in findings),
        always_simulate=always_simulate,
        cache=cache,
        padded=ctx.batch > 1,  # a batch of prompts is padded: SDPA then gets a mask
        sdpa_backends=tuple(n for n, b in backends.items() if b.usable is True) if backends else None,
    )
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
    pre = ctx.model.checkpoint_quantization if ctx.model is not None else None
    if pre is not None:  # a pre-quantized checkpoint loads through its own method only (QUANT009)
        if request.quantize not in ("auto", "none"):
            from advisor.errors import UsageError

            raise UsageError(f"the checkpoint is already quantized ({pre.label}): --quantize {request.quantize} "
                             "cannot apply (transformers raises ValueError for another quantization_config class); "
                             "drop --quantize")
        quants = ["none"]
    torch = ctx.torch
    has_gpu = bool(ctx.gpus) and (torch is None or torch.cuda is not None or torch.hip is not None or torch.assumed)
    placements: list[Literal["gpu", "multi-gpu", "cpu"]] = ["cpu"]
    if ctx.gpus:
        placements = ["gpu", "multi-gpu"] if len(ctx.gpus) > 1 else ["gpu"]
        if not has_gpu:
            placements = ["gpu"]  # keep the GPU plan so LIB003 explains why it cannot run
    from advisor.rules.method_readiness import ready_quantizations

    # bitsandbytes stays the default; another method joins where bitsandbytes leaves most weights alone
    wanted = request.quantize == "auto" and ctx.model is not None and ctx.model.quantizable_note is not None \
        and pre is None
    for placement in placements:
        more = ready_quantizations(ctx.env, ctx.weakest_cc, placement, allow_download=ctx.allow_download,
                                   cache=ctx.cache) \
            if wanted else []
        for quant in quants + more:
            for dtype in dtypes:
                if quant != "none" and dtype == "float32":
                    continue  # bitsandbytes with float32 compute is slow and pointless
                for attn in impls:
                    yield Candidate(attn=attn, dtype=dtype, quantization=quant, placement=placement)  # type: ignore[arg-type]


def _rank(ctx: Context, e: Evaluation) -> tuple[int, ...]:
    c = e.candidate
    quant = QUANTIZATIONS.index(c.quantization) if c.quantization in QUANTIZATIONS else len(QUANTIZATIONS)
    placement = {"gpu": 0, "multi-gpu": 1, "cpu": 2}[c.placement]
    warnings = sum(1 for f in e.findings if f.severity is Severity.WARN)
    dtype_order = ("float32", "bfloat16", "float16") if c.placement == "cpu" else ("bfloat16", "float16", "float32")
    req = ctx.knowledge.attention_requirement(c.attn)
    speed = req.speed_rank if req is not None else 99
    if c.placement == "cpu" and c.attn == "flex_attention":
        speed = 99  # on the CPU, flex compiles C++ through inductor: slow, and fails without a toolchain
    return (quant, placement, warnings, dtype_order.index(c.dtype), speed)


def _rejections(failed: list[Evaluation], universe: list[Candidate], fixes: list[RankedFix]) -> list[Rejection]:
    """One entry per distinct reason, naming every candidate it rejects; most useful fix first, then most common."""
    groups: dict[tuple[str, str, str, str], list[Candidate]] = {}
    for e in failed:
        for f in e.failures:
            groups.setdefault((f.option or e.candidate.attn, f.code, f.message, f.fix), []).append(e.candidate)
    order = {r.fix: i for i, r in enumerate(fixes) if r.unblocks}
    rows = [
        Rejection(option=option, code=code, message=message, fix=fix, candidates=len(cands),
                  label=group_label(cands, universe), labels=[c.label() for c in cands])
        for (option, code, message, fix), cands in groups.items()
    ]
    return sorted(rows, key=lambda r: (order.get(r.fix, len(order)), -r.candidates, r.code))


def _passed_over(ctx: Context, viable: list[Evaluation], universe: list[Candidate]) -> list[Rejection]:
    """The warnings that ranked an otherwise preferred option below the choice (why T5 gets float32 on a T4)."""
    if not viable:
        return []
    first = _rank(ctx, viable[0])
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for e in viable[1:]:
        rank = _rank(ctx, e)
        if rank[:2] + (0,) + rank[3:] < first:
            for f in e.findings:
                if f.severity is Severity.WARN:
                    groups.setdefault((f.code, f.message, f.fix), []).append(e.candidate)
    return [
        Rejection(option=cands[0].label(), code=code, message=message, fix=fix, candidates=len(cands),
                  label=group_label(cands, universe), labels=[c.label() for c in cands])
        for (code, message, fix), cands in groups.items()
    ]


def _verdict(env: Environment, chosen: PlanOption | None, fixes: list[RankedFix], failed: list[Evaluation],
             blocking: list[Finding], total: int) -> str:
    """The first line of the report: the answer, or why nothing fits and the single change that fixes it."""
    where = target_name(env)
    if chosen is not None:
        on = "" if chosen.candidate.placement == "cpu" else f" on {where}"
        return (f"Use {chosen.label}{on}: {size(chosen.memory.total_bytes)} of "
                f"{size(chosen.memory.budget_bytes)}.")
    if blocking:
        f = blocking[0]
        return fit(f"Nothing runs on {where}: ", f.message, f" ({f.code}). Fix: {brief(f.fix, 90)}.")
    top = headline_fix(fixes)
    if top is not None:
        return fit(f"Nothing fits on {where}: ", top.reason,
                   f" ({', '.join(top.rules)}). `{brief(top.fix, 90)}` would unblock {top.unblocks} of "
                   f"{plural(total, 'candidate')}, best {top.best} at {size(top.best_total_bytes)} of "
                   f"{size(top.best_budget_bytes)}.")
    smallest = min(failed, key=lambda e: (e.memory.total_bytes, len(e.failures)), default=None)
    if smallest is not None and any(f.code == "MEM001" for f in smallest.failures):
        return (f"Nothing fits on {where} (MEM001): the smallest candidate, {smallest.candidate.label()}, needs "
                f"{size(smallest.memory.total_bytes)} and the target has {size(smallest.memory.budget_bytes)}; "
                f"use more or larger GPUs, or shorten --seq-len / --batch.")
    if smallest is not None:
        f = smallest.failures[0]
        return fit(f"Nothing runs on {where}: ", f.message, f" ({f.code}). Fix: {brief(f.fix, 90)}.")
    return f"Nothing runs on {where}: no candidate matches the request."


def target_name(env: Environment) -> str:
    """'1 x T4', '2 x A100-40GB' or 'the CPU': the hardware, for a headline."""
    gpus = env.gpu_list
    if not gpus:
        return "the CPU"
    names = list(dict.fromkeys(g.name for g in gpus))
    return f"{len(gpus)} x {names[0]}" if len(names) == 1 else " + ".join(g.name for g in gpus)


def _tokenizer_advice(model: ModelSpec) -> dict[str, Any]:
    if model.generative and not model.is_encoder_decoder:
        return {"padding_side": "left"}
    return {}


# The head an `architectures` entry names -> the Auto class that loads it (when transformers cannot be asked).
_HEAD_SUFFIXES = (
    ("ForMaskedLM", "AutoModelForMaskedLM"), ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "AutoModelForTokenClassification"), ("ForQuestionAnswering", "AutoModelForQuestionAnswering"),
    ("ForMultipleChoice", "AutoModelForMultipleChoice"), ("ForImageClassification", "AutoModelForImageClassification"),
)


def _auto_class_of(model: ModelSpec) -> str | None:
    """The Auto class whose mapping resolves `model_type` to exactly the `architectures` class (issue 13: a
    masked-LM checkpoint loaded with AutoModel lost its head, and its logits were never measured)."""
    try:
        import transformers
        from transformers.models.auto import modeling_auto
    except ImportError:
        return None
    for name in dir(modeling_auto):
        if not (name.startswith("MODEL_FOR_") and name.endswith("_MAPPING_NAMES")) or name == "MODEL_MAPPING_NAMES":
            continue
        if getattr(modeling_auto, name).get(model.model_type) == model.architecture:
            auto = next((a for a in dir(transformers) if a.startswith("AutoModelFor") and
                         getattr(getattr(transformers, a, None), "_model_mapping", None) is not None and
                         getattr(getattr(transformers, a)._model_mapping, "_model_mapping", None) is getattr(modeling_auto, name)), None)
            if auto:
                return auto
    return None


def auto_class_name(model: ModelSpec) -> str:
    arch = model.architecture or ""
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return "AutoModelForCausalLM"
    if model.is_encoder_decoder and "Speech" in arch or model.model_type == "whisper":
        return "AutoModelForSpeechSeq2Seq"
    if model.is_encoder_decoder:
        return "AutoModelForSeq2SeqLM"
    for suffix, auto in _HEAD_SUFFIXES:
        if arch.endswith(suffix):
            return auto
    if arch and not arch.endswith("Model"):  # another head: the Auto class that maps to it, if any
        return _auto_class_of(model) or "AutoModel"
    return "AutoModel"  # no head named


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
                reasons.append(row.message + f"; installed transformers is {env.version_of('transformers')}"
                               + ("" if row.verified else " (unverified)"))
    providers: list[str] = []
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        found = env.library(dist).details.get("providers")
        if isinstance(found, list):
            providers = found
            break
    if not (env.library("onnxruntime").installed or env.library("onnxruntime-gpu").installed):
        reasons.append("onnxruntime / onnxruntime-gpu is not installed")
    gpu_providers = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider",
                                                  "MIGraphXExecutionProvider")]
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
    if knowledge is None or knowledge.cache != request.cache:  # --no-cache reaches every room through it
        knowledge = load_knowledge(knowledge.root if knowledge else None, cache=request.cache)
    ctx = replace(make_context(model, env, knowledge, batch=request.batch, seq_len=request.seq_len,
                               prompt_len=request.prompt_len, allow_download=request.allow_download), planner=True)
    env_findings = [f for f in run_environment_rules(ctx) if f.code not in request.ignore]
    blocking = [f for f in env_findings if f.severity is Severity.FAIL]
    universe = list(_candidates(ctx, request))
    # issue 14: closed form for all, simulated only where it can change the answer (advisor/estimate/selection.py)
    evaluations = evaluate_selected(universe, lambda c, sim: evaluate(ctx, c, request.ignore, simulate=sim,
                                                                    always_simulate=request.simulate,
                                                                    cache=request.cache),
                                    lambda e: _rank(ctx, e))
    viable = sorted((e for e in evaluations if e.viable and not blocking), key=lambda e: _rank(ctx, e))
    failed = [e for e in evaluations if not e.viable]
    tf_version = env.version_of("transformers")
    options = [
        PlanOption(
            label=e.candidate.label(),
            candidate=e.candidate,
            from_pretrained=from_pretrained_json(e.candidate, transformers_version=tf_version, max_memory=e.max_memory,
                                                 use_kernels=kernel_advice(ctx, e.candidate).emit),
            memory=e.memory,
            findings=[f for f in e.findings if f.severity is not Severity.OK],
        )
        for e in viable
    ]
    # issue 12: the one point where measurements and --prefer re-rank (advisor/plan/ranking.py)
    options, ranking = rerank(options, model, env, prefer=request.prefer, batch=request.batch,
                              measurements=request.measurements, serving=request.serving)
    chosen = options[0] if options else None
    tokenizer = _tokenizer_advice(model)
    python = None
    if chosen is not None:
        python = python_snippet(
            model_name=model.path or model.name, auto_class=auto_class_name(model), kwargs=chosen.from_pretrained,
            tokenizer=tokenizer, generative=model.generative,
            tokenizer_files=model.path is None or has_tokenizer(str(model.path)),
        )
    findings = env_findings + (chosen.findings if chosen else [])
    fixes = rank_fixes([(e.candidate, e.failures, e) for e in failed], lambda e: _rank(ctx, e), len(universe),
                       _rank(ctx, viable[0]) if viable else None)
    if not ctx.support:
        where = (f"the attention support of {model.model_type} is {ctx.support_source}"
                 if ctx.support_source.startswith("unknown") else f"{model.model_type} is not in {ctx.support_source}")
        findings.append(support_unknown.finding(Severity.WARN, f"{where}; only eager is certain"))
    parallelism = _parallelism(ctx, chosen, request, model, tokenizer)
    if parallelism.kind == "tensor":
        python = parallelism.python
    return Recommendation(
        ok=chosen is not None and not (request.tp and parallelism.failures),
        model=model,
        target=env.description or env.source,
        transformers=tf_version,
        facts_source=ctx.knowledge.releases.source_of(tf_version),
        batch=request.batch,
        seq_len=ctx.seq_len,
        chosen=chosen,
        from_pretrained=chosen.from_pretrained if chosen else None,
        memory=chosen.memory if chosen else None,
        alternatives=options[1:],
        rejected=[
            Rejection.of(f, "environment", candidates=len(universe), label="every candidate") for f in blocking
        ] + _rejections(failed, universe, fixes),
        findings=findings,
        attention_support=ctx.support,
        attention_support_source=ctx.support_source,
        tokenizer=tokenizer,
        onnxruntime=_onnxruntime_advice(ctx, model),
        python=python,
        ranking=ranking,
        verdict=_verdict(env, chosen, fixes, failed, blocking, len(universe)) + (
            f" Parallelism: tensor parallel {parallelism.size} (`{parallelism.launch}`)."
            if parallelism.kind == "tensor" and not request.tp else ""),
        fixes=fixes,
        passed_over=_passed_over(ctx, viable, universe),
        hub_kernels=kernel_advice(ctx, chosen.candidate) if chosen is not None else None,
        parallelism=parallelism,
    )


def _parallelism(ctx: Context, chosen: PlanOption | None, request: PlanRequest, model: ModelSpec,
                 tokenizer: dict[str, Any]) -> Parallelism:
    """Issue 30: the parallelism key for the chosen option, with the torchrun snippet when it is tensor."""
    from advisor.plan.parallelism import parallelism_for

    version = ctx.env.version_of("transformers")

    def kwargs_of(c: Candidate) -> dict[str, Any]:
        if chosen is not None and c == chosen.candidate:
            return chosen.from_pretrained  # device_map placement keeps its max_memory
        return from_pretrained_json(c, transformers_version=version, use_kernels=kernel_advice(ctx, c).emit)

    found = parallelism_for(ctx, chosen.candidate if chosen else None, kwargs_of, tp=request.tp,
                            prefer=request.prefer, serving=request.serving, ignore=request.ignore)
    if found.kind == "tensor" and found.from_pretrained is not None:
        from advisor.plan.emit_parallel import tensor_snippet

        found = found.model_copy(update={"python": tensor_snippet(
            model_name=model.path or model.name, auto_class=auto_class_name(model), kwargs=found.from_pretrained,
            tokenizer=tokenizer, generative=model.generative, size=found.size)})
    return found


def torch_summary(env: Environment) -> str:
    t = env.torch
    if not isinstance(t, TorchInfo):
        return str(t)
    build = f"CUDA {t.cuda}" if t.cuda else f"ROCm {t.hip}" if t.hip else "CPU"
    return f"torch {t.version} ({build})"
