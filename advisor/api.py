"""The Python API: the same operations as the CLI, returning objects instead of printing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from advisor.candidate import DTYPE_NAMES, Candidate
from advisor.errors import UsageError
from advisor.estimate.memory import MemoryEstimate
from advisor.facts import SCHEMA_VERSION, Environment
from advisor.findings import Finding, Severity
from advisor.io.read_input import printable, read_json_file
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import AttentionSupportTable
from advisor.model.remote_code import refuse_code_keys
from advisor.model.resolve import resolve_model
from advisor.model.spec import ModelSpec
from advisor.plan.emit import from_pretrained_json, quantization_of
from advisor.plan.options import PlanRequest, Recommendation
from advisor.plan.parallelism import Parallelism
from advisor.plan.recommend import evaluate, make_context, make_plan
from advisor.probe.target import TargetSpec, resolve_target
from advisor.rules import run_environment_rules
from advisor.rules.base import Context

if TYPE_CHECKING:  # the doctor's report is imported by doctor() alone: recommend and check start without it
    from advisor.plan.doctor_report import DoctorReport

__all__ = ["probe", "recommend", "check", "doctor", "matrix", "CheckResult", "target_environment", "parse_config"]


def target_environment(
    *,
    gpu: str | Sequence[str] | None = None,
    cpu: bool = False,
    env: str | Path | Environment | None = None,
    assume: Sequence[str] = (),
    without: Sequence[str] = (),
    import_checks: bool = True,
    import_torch: bool = True,
    kernel_runs: bool = True,
    cache: bool = True,
) -> Environment:
    """This machine, or the one described by `env` / `gpu` / `cpu`, with `assume`/`without` applied.

    `import_torch=False` probes this machine without importing torch (recommend and check stay fast);
    `cache=False` neither reads nor writes the analysis cache (the CLI's --no-cache)."""
    gpus = [gpu] if isinstance(gpu, str) else list(gpu or ())
    spec = TargetSpec(
        env_file=Path(env) if isinstance(env, (str, Path)) else None,
        env=env if isinstance(env, Environment) else None,
        gpus=gpus,
        cpu=cpu,
        assume=tuple(assume),
        without=tuple(without),
        import_checks=import_checks,
        import_torch=import_torch,
        kernel_runs=kernel_runs,
        cache=cache,
    )
    return resolve_target(spec)


def probe(*, import_checks: bool = True, cache: bool = True) -> Environment:
    return target_environment(import_checks=import_checks, cache=cache)


def _hub_reach(env: Environment, allow_download: bool, requested: object = None, *, cache: bool = True) -> Environment:
    """With --allow-download, ask the Hub once (bounded) whether it answers, where a load would kernelize: the
    Hub-kernel rules then know instead of presuming (issue 24). Without it, no network call is made. A snapshot
    from another machine keeps what it recorded: this machine's network says nothing about that one."""
    if not allow_download or env.hub is None or env.source == "file":
        return env
    from advisor.knowledge.releases import load_release_constraints

    tf = env.version_of("transformers")
    default = load_release_constraints(cache=cache).at("use_kernels_default", tf) if tf else None
    if not (requested or (requested is None and default is not None and default.value is True)):
        return env
    from advisor.probe.hub_access import with_reachability

    return env.model_copy(update={"hub": with_reachability(env.hub)})


def _model(model: str | ModelSpec, allow_download: bool, trust_remote_code: bool, cache: bool) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    return resolve_model(model, allow_download=allow_download, trust_remote_code=trust_remote_code, cache=cache)


def recommend(
    model: str | ModelSpec,
    *,
    dtype: str = "auto",
    quantize: str = "auto",
    batch: int = 1,
    seq_len: int | None = None,
    attn: str | None = None,
    ignore: Sequence[str] = (),
    allow_download: bool = False,
    trust_remote_code: bool = False,
    prefer: str = "quality",
    measurements: bool = True,
    tp: int | None = None,
    serving: str = "server",
    simulate: bool = False,
    cache: bool = True,
    **target: Any,
) -> Recommendation:
    """Plan how to load `model` on the target; `plan.from_pretrained_kwargs()` is ready for from_pretrained.
    `serving` (--workload): "server" or "one-shot", whether a compiled kernel's first call and tensor parallel's
    fixed costs count (one-shot keeps device_map wherever it fits; `tp` overrides the parallelism choice).
    `simulate`: memory simulated on meta tensors even for a shipped or cached model (imports transformers).
    `cache=False`: the analysis cache is neither read nor written (--no-cache)."""
    # issue 14: a new config's meta-device count (importing transformers) overlaps the probe's waits on its children
    from advisor.isolation.background import in_background

    pending = in_background(_model, model, allow_download, trust_remote_code, cache)
    env = _hub_reach(target_environment(**{"import_torch": False, **target}, cache=cache), allow_download, cache=cache)
    spec = pending.result()
    request = PlanRequest(dtype=dtype, quantize=quantize, batch=batch, seq_len=seq_len, attn=attn,  # type: ignore[arg-type]
                          ignore=tuple(c.upper() for c in ignore), prefer=prefer,
                          measurements=measurements, allow_download=allow_download, tp=tp,
                          serving=serving, simulate=simulate, cache=cache)  # type: ignore[arg-type]
    return make_plan(spec, env, request)


class CheckResult(BaseModel):
    """Will this one configuration work on that target? Every failing rule, with its fix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    model: str | None = None  # the model checked (issue 31: several checks in a script could not be told apart)
    label: str
    target: str
    candidate: Candidate
    failures: list[Finding]
    warnings: list[Finding]
    memory: MemoryEstimate | None
    measurements: list[str] = []  # issue 12: what was measured on this GPU about this configuration
    facts_source: str | None = None  # where the facts about the target's transformers came from, if not the tables
    parallelism: Parallelism | None = None  # issue 30: with --tp N, tensor parallel of that size judged


def _default_dtype(spec: ModelSpec, transformers_version: str | None) -> str:
    """What from_pretrained does with no dtype: v5 keeps the checkpoint's dtype ('auto'), v4 loads float32."""
    from advisor.knowledge import version_matches

    if transformers_version and version_matches(transformers_version, "<5.0"):
        return "float32"
    stored = (spec.stored_dtype or "float32").removeprefix("torch.")
    return stored if stored in DTYPE_NAMES else "float32"


def parse_config(data: dict[str, Any], *, source: str = "the config") -> dict[str, Any]:
    """Accept from_pretrained kwargs, or a whole `recommend --format json` output; never a code key (issue 15)."""
    refuse_code_keys(data, source=source)
    if "from_pretrained" in data and isinstance(data["from_pretrained"], dict):
        data = data["from_pretrained"]
    known = {"dtype", "torch_dtype", "attn_implementation", "device_map", "max_memory", "quantization_config",
             "load_in_8bit", "load_in_4bit", "low_cpu_mem_usage", "use_kernels"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"config has keys the advisor cannot check: {', '.join(unknown)}; "
                         "give from_pretrained kwargs such as dtype, attn_implementation, quantization_config, device_map")
    _check_kwarg_types(data, source)
    return data


def _check_kwarg_types(data: dict[str, Any], source: str) -> None:
    """Issue 25: each kwarg of the type from_pretrained takes (the manifest's schema), or one UsageError line;
    `attn_implementation: 7` crashed, a `device_map` list gave exit 1 and a string `quantization_config` exit 0."""
    from pydantic import ValidationError

    from advisor.io.read_input import field_name
    from advisor.model.prequantized import QuantizationFields
    from advisor.plan.options import FromPretrained

    try:
        FromPretrained.model_validate({k: v for k, v in data.items() if v is not None})
        if isinstance(data.get("quantization_config"), dict):
            QuantizationFields.model_validate(data["quantization_config"])
    except ValidationError as exc:
        errors = exc.errors()
        locs = [_plain_loc(e["loc"]) for e in errors]
        first, loc = errors[0], locs[0]
        if exc.title == "QuantizationFields":
            loc = ("quantization_config", *loc)
        msg = str(first["msg"]).removeprefix("Value error, ")
        if locs.count(locs[0]) > 1:  # every branch of a union failed: no one branch's wording fits
            msg = "not a type from_pretrained accepts here"
        got = repr(first.get("input"))
        got = (got if len(got) <= 40 else got[:37] + "...").encode("ascii", "backslashreplace").decode("ascii")
        raise UsageError(f"{source}: field {field_name(loc)}: {msg} (got {got}); fix the config") from None


def _plain_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic location without the union branch names it inserts (`str`, `dict[str,...]`, `function-...`)."""
    return tuple(p for p in loc if not (isinstance(p, str) and (
        "[" in p or p.startswith(("function-", "constrained-")) or p in ("str", "int", "bool", "float", "none"))))


def _config_candidate(config: dict[str, Any], ctx: Context, spec: ModelSpec, attn: str | None, dtype: str | None,
                      quantize: str | None) -> Candidate:
    tf = ctx.env.version_of("transformers")
    dtype = dtype or config.get("dtype") or config.get("torch_dtype")
    if isinstance(dtype, str):
        dtype = dtype.removeprefix("torch.")
    if dtype in (None, "auto"):
        dtype = _default_dtype(spec, tf) if dtype is None else (spec.stored_dtype or "float32").removeprefix("torch.")
    if dtype not in DTYPE_NAMES:
        raise UsageError(f"dtype {dtype!r} is not one of {', '.join(DTYPE_NAMES)}")
    if quantize is None:
        quantize = quantization_of(config)
    attn = attn or config.get("attn_implementation")
    if attn is None:
        attn = "sdpa" if ctx.support.get("sdpa", True) else "eager"
    known_impls = ctx.knowledge.attention_impls
    if attn not in known_impls and not ctx.knowledge.releases.is_attn_name(attn):
        raise UsageError(f"unknown attention implementation {attn!r}; choose one of {', '.join(known_impls)}, "
                         "paged|<one of them>, or a Hub kernel org/repo[:function]")
    device_map = config.get("device_map")
    if device_map == "cpu" or (device_map is None and not ctx.gpus):
        placement = "cpu"
    elif device_map in ("auto", "balanced", "balanced_low_0", "sequential") and len(ctx.gpus) > 1:
        placement = "multi-gpu"
    else:
        placement = "gpu"
    return Candidate(attn=attn, dtype=dtype, quantization=quantize, placement=placement)  # type: ignore[arg-type]


def check(
    model: str | ModelSpec,
    *,
    config: dict[str, Any] | str | Path | None = None,
    attn: str | None = None,
    dtype: str | None = None,
    quantize: str | None = None,
    batch: int = 1,
    seq_len: int | None = None,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    measurements: bool = True,
    tp: int | None = None,
    simulate: bool = False,
    cache: bool = True,
    **target: Any,
) -> CheckResult:
    """Judge one configuration (from a kwargs JSON file and/or explicit options) against the target;
    `cache=False`: the analysis cache is neither read nor written (--no-cache)."""
    config_path = None
    if isinstance(config, (str, Path)):
        path = config_path = Path(config)
        raw = read_json_file(path, what="config file")
        if not isinstance(raw, dict):
            raise UsageError(f"config file {printable(path)} must hold a JSON object of from_pretrained kwargs")
        config = raw
    data = parse_config(config or {}, source=f"config file {config_path}" if config_path else "the config")
    from advisor.isolation.background import (
        in_background,  # the model is described beside the probe (issue 14)
    )

    pending = in_background(_model, model, allow_download, trust_remote_code, cache)
    env = _hub_reach(target_environment(**{"import_torch": False, **target}, cache=cache), allow_download,
                     data.get("use_kernels"), cache=cache)
    spec = pending.result()
    knowledge = load_knowledge(cache=cache)
    ctx = replace(make_context(spec, env, knowledge, batch=batch, seq_len=seq_len, allow_download=allow_download),
                  from_pretrained=data, dtype_given=bool(dtype or data.get("dtype") or data.get("torch_dtype")))
    candidate = _config_candidate(data, ctx, spec, attn, dtype, quantize)
    evaluation = evaluate(ctx, candidate, always_simulate=simulate, cache=cache)
    findings = run_environment_rules(ctx) + evaluation.findings
    parallelism = None
    if tp is not None and tp > 1:  # issue 30: the TP rules join the check's findings; TP005 judges the memory
        from advisor.plan.parallelism import requested_tensor

        version = env.version_of("transformers")
        parallelism = requested_tensor(ctx, candidate, tp, lambda c: from_pretrained_json(c, transformers_version=version))
        findings = [f for f in findings if f.code != "MEM001"]
        findings += [f for f in parallelism.findings if f.severity is not Severity.OK]
    failures = [f for f in findings if f.severity is Severity.FAIL]
    warnings = [f for f in findings if f.severity is Severity.WARN]
    from advisor.plan.ranking import measured_notes

    notes = measured_notes(spec, env, candidate, batch=batch) if measurements else []
    return CheckResult(ok=not failures, model=spec.name, label=candidate.label(), target=env.description or env.source,
                       candidate=candidate, failures=failures, warnings=warnings, memory=evaluation.memory,
                       measurements=notes, parallelism=parallelism,
                       facts_source=knowledge.releases.source_of(env.version_of("transformers")))


def doctor(
    model: str | ModelSpec | None = None,
    *,
    smoke: bool = False,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    prefer: str = "quality",
    measurements: bool = True,
    serving: str = "server",
    simulate: bool = False,
    cache: bool = True,
    **target: Any,
) -> DoctorReport:
    """The full report: machine, libraries, and (with a model) its compatibility and recommendation;
    `serving` (--workload) as in `recommend`; `cache=False`: the analysis cache is neither read nor written (--no-cache)."""
    env = _hub_reach(target_environment(**target, cache=cache), allow_download, cache=cache)
    knowledge = load_knowledge(cache=cache)
    recommendation = None
    if model is not None:
        spec = _model(model, allow_download, trust_remote_code, cache)
        request = PlanRequest(prefer=prefer, measurements=measurements, allow_download=allow_download,  # type: ignore[arg-type]
                              serving=serving, simulate=simulate, cache=cache)
        recommendation = make_plan(spec, env, request, knowledge=knowledge)
        from advisor.prove.proofs import prove_finalists

        proven = prove_finalists(env, recommendation)  # issue 27: a deferred proof that now matters runs
        if proven is not env:
            env = proven
            recommendation = make_plan(spec, env, request, knowledge=knowledge)
        findings = [f for f in recommendation.findings if f.code.startswith(("LIB", "PLAN"))]
    else:
        findings = run_environment_rules(Context(env=env, knowledge=knowledge))
    model_kernels = None
    if recommendation is not None and recommendation.chosen is not None and env.kernel_runs:
        from advisor.probe.model_kernels import model_kernel_runs

        live = not (target.get("env") or target.get("gpu") or target.get("cpu"))
        model_kernels = model_kernel_runs(env, recommendation.model.head_dim, recommendation.chosen.candidate.dtype,
                                          live=live)
    smoke_report = None
    if smoke and recommendation is not None:
        from advisor.prove.smoke import plan_options, run_smoke

        smoke_report = run_smoke(recommendation.model, plan_options(recommendation)).model_dump(mode="json")
    from advisor.plan.doctor_report import build_report

    return build_report(env, findings, recommendation, smoke_report, model_kernels, cache=cache)


def matrix(transformers_version: str | None = None, *, refresh: bool = False) -> AttentionSupportTable:
    """Attention support per architecture for a release (default: the installed transformers)."""
    from advisor.model.attention_support import table_for

    if transformers_version is None and refresh is False:
        from advisor.knowledge.installed import installed_version

        if installed_version() is None:
            raise UsageError("transformers is not installed here: name a release with --transformers VERSION")
    return table_for(transformers_version, load_knowledge(), refresh=refresh)[0]
