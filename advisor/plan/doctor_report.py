"""The doctor report: the one object every renderer receives. Statuses are decided here, styling is not."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator

from advisor.model.towers import shape_line
from advisor.facts import SCHEMA_VERSION, Environment, GpuInfo, TorchInfo, Unavailable, known
from advisor.findings import Finding, Severity
from advisor.numbers import GiB, diff, millis, plural, seconds, size
from advisor.plan.options import Recommendation
from advisor.plan.recommend import torch_summary
from advisor.rules.method_readiness import doctor_rows

__all__ = ["DoctorReport", "Item", "Section", "build_report"]


# Why each optional library matters: shown when it is missing.
_PURPOSE = {
    "torch": "required to load any model",
    "transformers": "required: the advisor plans its from_pretrained calls",
    "accelerate": "needed for device_map placement and bitsandbytes loading",
    "safetensors": "fast, safe weight loading",
    "tokenizers": "fast tokenizers",
    "huggingface-hub": "model downloads and the local cache",
    "flash-attn": "attn_implementation='flash_attention_2' (NVIDIA Ampere or newer, AMD MI200/MI300)",
    "flash-attn-3": "attn_implementation='flash_attention_3' (Hopper)",
    "flash-attn-4": "attn_implementation='flash_attention_4' (Hopper/Blackwell, transformers >= 5.4)",
    "kernels": "Hub kernels: transformers' fallback when flash-attn is not installed",
    "bitsandbytes": "8-bit and 4-bit quantization (BitsAndBytesConfig)",
    "optimum": "Optimum tooling (BetterTransformer was removed in optimum 2.0)",
    "optimum-onnx": "ONNX export and ORTModel* (ONNX Runtime) inference",
    "onnxruntime": "ONNX Runtime on the CPU",
    "onnxruntime-gpu": "ONNX Runtime with CUDA/TensorRT execution providers",
    "nvidia-ml-py": "reading GPUs through NVML without a CUDA context",
    "torchao": "TorchAoConfig int8/int4 (replaces nn.Linear subclasses too)",
    "hqq": "HqqConfig 1-8 bit",
    "optimum-quanto": "QuantoConfig int8/int4/float8 weights",
    "gptqmodel": "GPTQ and AWQ checkpoints",
    "compressed-tensors": "compressed-tensors checkpoints (llm-compressor), MoE experts included",
    "fbgemm-gpu": "FbgemmFp8Config (compute capability >= 9.0)",
    "triton": "MXFP4 gpt-oss kernels (triton >= 3.4.0) and other Triton kernels",
}
_REQUIRED = {"torch", "transformers"}
_INSTALL = {"flash-attn": "pip install flash-attn --no-build-isolation", "torch": "pip install torch (the build for your CUDA or ROCm)"}
# Probe notes written for kernel developers, said for people (they also appear in saved snapshots).
_PLAIN = {
    "no GQA on ROCm": "on AMD ROCm it cannot run grouped-query attention (fewer key/value heads than query heads)",
    "O(L^2) memory": "memory grows with the square of the sequence length",
}


class Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: Severity
    value: str
    fix: str = ""

    @field_validator("status", mode="before")
    @classmethod
    def _either_spelling(cls, value: Any) -> Any:
        return Severity.of(value) if isinstance(value, str) else value

    @field_serializer("status")
    def _word(self, status: Severity) -> str:
        return status.word


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    items: list[Item]

    @property
    def worst(self) -> Severity:
        return max((i.status for i in self.items), key=lambda s: s.rank, default=Severity.OK)


class DoctorReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    target: str
    environment: Environment
    sections: list[Section]
    findings: list[Finding]
    recommendation: Recommendation | None = None
    smoke: dict[str, Any] | None = None
    problems: int = 0
    warnings: int = 0
    facts_source: str | None = None  # where the facts about the target's transformers came from, if not the tables


def _bytes(value: int | Unavailable | None) -> str:
    number = known(value) if value is not None else None
    return f"{number / GiB:.1f} GiB" if number is not None else str(value)


def _host(env: Environment) -> Section:
    h = env.host
    return Section(title="Host", items=[
        Item(name="OS", status=Severity.OK, value=f"{h.os} ({h.machine})"),
        Item(name="Python", status=Severity.OK, value=h.python),
        Item(name="CPU", status=Severity.OK, value=f"{h.cpu} x {h.cpu_count}"),
        Item(name="RAM", status=Severity.OK, value=f"{_bytes(h.ram_total_bytes)} total, {_bytes(h.ram_available_bytes)} available"),
    ])


def _gpu_value(gpu: GpuInfo, env: Environment) -> str:
    arch = f"compute capability {gpu.compute_capability}" if gpu.compute_capability else f"{gpu.gfx_arch}"
    free = "" if isinstance(gpu.memory_free_bytes, Unavailable) else f", {_bytes(gpu.memory_free_bytes)} free"
    return f"{gpu.name}: {arch}, {_bytes(gpu.memory_total_bytes)}{free}"


def _no_gpu(reason: str) -> str:
    """One statement of why there is no GPU (the probe joins NVML's and torch's reasons, which overlap)."""
    if "no GPU: " in reason:
        main = reason.split("no GPU: ", 1)[1]
        detail = re.search(r"\(([^)]*)\)", reason.split("no GPU: ", 1)[0])
        return f"none: {main}" + (f" ({detail.group(1)})" if detail else "")
    return reason if reason.lower().startswith(("no ", "none")) else f"none: {reason}"


def _gpus(env: Environment) -> Section:
    items: list[Item] = []
    if isinstance(env.gpus, Unavailable) or not env.gpus:
        reason = env.gpus.reason if isinstance(env.gpus, Unavailable) else "none in this target"
        items.append(Item(name="GPUs", status=Severity.INFO, value=_no_gpu(reason)))
    else:
        for gpu in env.gpus:
            broken = any(isinstance(getattr(gpu, f), Unavailable) for f in ("compute_capability", "memory_total_bytes"))
            items.append(Item(name=f"GPU {gpu.index}", status=Severity.WARN if broken else Severity.OK, value=_gpu_value(gpu, env),
                              fix="check nvidia-smi" if broken else ""))
            if gpu.mig_mode is True:
                items.append(Item(name=f"GPU {gpu.index} MIG", status=Severity.WARN, value="MIG enabled",
                                  fix="plan against the MIG instance's memory: run `advisor probe` inside the instance"))
    if env.driver.driver_version:
        items.append(Item(name="Driver", status=Severity.OK,
                          value=f"{env.driver.driver_version} (CUDA driver API {env.driver.cuda_driver_version})"))
    torch = env.torch
    if isinstance(torch, TorchInfo) and torch.assumed:
        here = env.version_of("torch")
        build = "CUDA" if torch.cuda else "ROCm" if torch.hip else "CPU"
        items.append(Item(name="torch", status=Severity.INFO, value=f"torch {torch.version} assumed with {build} for this target"
                          + (f" (installed here: {here})" if here and here != torch.version else "")))
    else:
        items.append(Item(name="torch", status=Severity.OK if isinstance(torch, TorchInfo) else Severity.FAIL,
                          value=torch_summary(env), fix="" if isinstance(torch, TorchInfo) else "pip install torch"))
    return Section(title="GPUs", items=items)


def _dtypes(env: Environment) -> Section:
    items = []
    names = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
    for gpu in env.gpu_list:
        d = gpu.dtypes
        if isinstance(d, Unavailable):
            items.append(Item(name=gpu.name, status=Severity.WARN, value=str(d),
                              fix="run `advisor probe` on the machine itself to read the GPU's dtypes"))
            continue
        value = "  ".join(f"{n} {'yes' if getattr(d, n) else 'no'}" for n in names)
        items.append(Item(name=f"GPU {gpu.index} {gpu.name}", status=Severity.OK, value=value))
    if not items:
        items.append(Item(name="CPU", status=Severity.INFO, value="fp32 (bf16/fp16 run, usually slower than fp32)"))
    return Section(title="dtype support (native)", items=items)


def _sdpa(env: Environment) -> Section:
    if not isinstance(env.torch, TorchInfo):
        return Section(title="SDPA backends", items=[Item(name="SDPA", status=Severity.FAIL, value=str(env.torch))])
    items = [
        Item(name=name, status=Severity.OK if backend.usable is True else Severity.INFO,
             value=("usable: " if backend.usable is True else "not usable: ") + _plain(backend.reason))
        for name, backend in env.torch.sdpa_backends.items()
    ]
    flex = env.torch.flex_attention
    items.append(Item(name="flex_attention", status=Severity.OK if flex is True else Severity.INFO,
                      value="available" if flex is True else str(flex)))
    return Section(title="SDPA backends", items=items)


def _plain(text: str) -> str:
    for jargon, plain in _PLAIN.items():
        text = text.replace(jargon, plain)
    return text


def _blocking(dist: str, rec: Recommendation | None) -> tuple[Severity, str]:
    """How much a missing library costs this plan: a problem when installing it is the top fix of a plan with
    no viable candidate, a warning when it would unblock a better plan than the chosen one, else information."""
    if rec is None:
        return Severity.INFO, ""
    for i, fix in enumerate(rec.fixes):
        if fix.installs == dist and fix.unblocks:
            status = Severity.FAIL if not rec.ok and i == 0 else Severity.WARN if fix.improves else Severity.INFO
            better = "" if fix.improves else ", none better than the chosen plan"
            return status, f"; installing it unblocks {plural(fix.unblocks, 'candidate')}{better} (best: {fix.best})"
    return Severity.INFO, ""


def _kernel_runs(env: Environment) -> Section:
    """One tiny call per installed kernel on the GPU (advisor/probe/kernels.py): ran, failed (why), or not run."""
    reasons = {run.runs.reason for run in env.kernel_runs.values() if isinstance(run.runs, Unavailable)}
    if len(reasons) == 1 and all(not isinstance(run.runs, bool) for run in env.kernel_runs.values()):
        return Section(title="Kernel runs", items=[Item(name=", ".join(env.kernel_runs), status=Severity.INFO, value=reasons.pop())])
    items = []
    for name, run in env.kernel_runs.items():
        if run.runs is True:
            tried = ", ".join(sorted({c.dtype for c in run.cases}))
            dims = sorted({c.head_dim for c in run.cases if c.head_dim is not None})
            where = f"{tried}; head_dim {', '.join(map(str, dims))}" if dims else tried
            items.append(Item(name=name, status=Severity.OK, value=f"runs ({where})"))
        elif run.runs is False:
            items.append(Item(name=name, status=Severity.FAIL, value=f"fails: {env.kernel_failure(name)}"))
        else:
            items.append(Item(name=name, status=Severity.INFO, value=run.runs.reason))
    return Section(title="Kernel runs", items=items)


def _libraries(env: Environment, rec: Recommendation | None = None) -> Section:
    items = []
    for dist, lib in env.libraries.items():
        if not lib.installed:
            required = dist in _REQUIRED
            status, cost = (Severity.FAIL, "") if required else _blocking(dist, rec)
            items.append(Item(name=dist, status=status, value=f"missing: {_PURPOSE.get(dist, '')}{cost}".rstrip(": "),
                              fix=_INSTALL.get(dist, f"pip install {dist}")))
            continue
        if lib.assumed:
            items.append(Item(name=dist, status=Severity.OK, value=f"{lib.version} (assumed with --assume; not checked here)"))
            continue
        value = f"{lib.version}"
        status = Severity.OK
        if lib.importable is False:
            status, value = Severity.FAIL, f"{value}: installed but does not load: {lib.error}"
        elif isinstance(lib.importable, Unavailable):
            value += f" (import not checked: {lib.importable.reason})"
        elif lib.importable is True:
            value += ", imports and loads"
        for key, detail in lib.details.items():
            if key != "module" and (key != "available" or status is Severity.FAIL):
                shown = ", ".join(detail) if isinstance(detail, list) else detail
                value += f"; {key}: {shown}" if shown not in ("", None) else f"; {key}: none"  # never `key: ;`
        items.append(Item(name=dist, status=status, value=value,
                          fix="reinstall a build matching this torch/CUDA" if status is Severity.FAIL else ""))
    return Section(title="Kernels and libraries", items=items)


def _quant_methods(env: Environment, cache: bool) -> Section:
    """What each quantization method transformers loads would need here (data/quant_methods.json)."""
    ccs = [cc for g in env.gpu_list if (cc := known(g.compute_capability)) is not None]
    weakest = min(ccs, key=lambda cc: cc.as_tuple) if ccs else None
    return Section(title="Quantization methods", items=[
        Item(name=name, status=status, value=value, fix=fix)
        for name, status, value, fix in doctor_rows(env, weakest, cache=cache)
    ])


def _model(rec: Recommendation) -> list[Section]:
    m = rec.model
    compat = [
        Item(name="model", status=Severity.OK, value=f"{m.display}, {shape_line(m)}, stored {m.stored}"),
    ]
    for impl, supported in rec.attention_support.items():
        compat.append(Item(name=impl, status=Severity.OK if supported else Severity.INFO,
                           value=("declared" if supported else "not declared") + f" by {rec.attention_support_source}"))
    plan: list[Item] = [Item(name="verdict", status=Severity.OK if rec.ok else Severity.FAIL, value=rec.verdict,
                             fix="" if rec.ok or not rec.fixes or not rec.fixes[0].unblocks else rec.fixes[0].fix)]
    if rec.chosen is not None and rec.memory is not None:
        plan.append(Item(name="use", status=Severity.OK, value=rec.chosen.label))
        plan.append(Item(name="from_pretrained", status=Severity.OK,
                         value=", ".join(f"{k}={v!r}" for k, v in (rec.from_pretrained or {}).items() if k != "quantization_config")
                         + (" + BitsAndBytesConfig" if rec.from_pretrained and "quantization_config" in rec.from_pretrained else "")))
        plan.append(Item(name="memory", status=Severity.OK,
                         value=f"{size(rec.memory.total_bytes)} of {size(rec.memory.budget_bytes)}"))
        for f in rec.chosen.findings:  # the chosen plan's own notes (DTYPE003 on an fp16 plan), as in the JSON
            plan.append(Item(name=f.code, status=f.severity, value=f.message,
                             fix=f.fix if f.severity in (Severity.WARN, Severity.FAIL) else ""))
        for p in rec.passed_over:
            plan.append(Item(name=f"ranked below: {p.label}", status=Severity.INFO, value=f"[{p.code}] {p.message}", fix=p.fix))
    for rej in rec.rejected:
        plan.append(Item(name=f"rejected {rej.label or rej.option}", status=Severity.INFO,
                         value=f"[{rej.code}] {rej.message} ({plural(rej.candidates, 'candidate')})", fix=rej.fix))
    return [Section(title="Model compatibility", items=compat), Section(title="Recommendation", items=plan)]


def _facts_source(env: Environment, cache: bool) -> str | None:
    from advisor.knowledge import load_knowledge

    return load_knowledge(cache=cache).releases.source_of(env.version_of("transformers"))


def build_report(
    env: Environment, findings: list[Finding], recommendation: Recommendation | None = None,
    smoke: dict[str, Any] | None = None, model_kernels: Any = None, *, cache: bool = True,
) -> DoctorReport:
    """`cache=False`: --no-cache, the release facts read without the user's analysis cache."""
    sections = [_host(env), _gpus(env), _dtypes(env), _sdpa(env), _libraries(env, recommendation),
                _quant_methods(env, cache)]
    if env.kernel_runs:
        sections.append(_kernel_runs(env))
    if model_kernels is not None:  # issue 29: advisor/probe/model_kernels.py
        from advisor.probe.model_kernels import summary

        sections.append(Section(
            title=f"Kernel runs at this model's head_dim {model_kernels.head_dim}, {model_kernels.dtype} "
                  f"({model_kernels.source})",
            items=[Item(name=kind, status=status, value=text) for kind, status, text in summary(model_kernels)]))
    if findings:
        sections.append(Section(title="Findings", items=[
            Item(name=f.code, status=f.severity, value=f.message, fix=f.fix) for f in findings
        ]))
    if recommendation is not None:
        sections += _model(recommendation)
    if smoke is not None:
        sections.append(Section(title="Smoke test", items=[
            Item(name=a.get("label", "attempt"), status=Severity.OK if a.get("ok") else Severity.FAIL,
                 value=(f"load {seconds(a.get('load_seconds'))} s, latency {millis(a.get('latency_ms'))} ms, "
                        f"max |diff| {diff(a.get('max_abs_diff'))}") if a.get("ok") else str(a.get("error")),
                 fix="" if a.get("ok") else "see the error; the next candidate is tried automatically")
            for a in smoke.get("attempts", [])
        ]))
    problems = sum(i.status is Severity.FAIL for s in sections for i in s.items)
    warnings = sum(i.status is Severity.WARN for s in sections for i in s.items)
    ok = not problems and (recommendation is None or recommendation.ok) and (smoke is None or bool(smoke.get("ok")))
    return DoctorReport(ok=ok, target=env.description or env.source, environment=env, sections=sections,
                        findings=findings, recommendation=recommendation, smoke=smoke, problems=problems,
                        warnings=warnings, facts_source=_facts_source(env, cache))
