"""The doctor report: the one object every renderer receives. Statuses are decided here, styling is not."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from advisor.facts import SCHEMA_VERSION, Environment, GpuInfo, TorchInfo, Unavailable, known
from advisor.findings import Finding, Severity
from advisor.memory import GiB
from advisor.plan import Recommendation, torch_summary

__all__ = ["DoctorReport", "Item", "Section", "build_report"]

Status = Literal["ok", "info", "warning", "problem"]
_STATUS = {Severity.OK: "ok", Severity.INFO: "info", Severity.WARN: "warning", Severity.FAIL: "problem"}

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
    "flash-attn-4": "attn_implementation='flash_attention_4' (Hopper/Blackwell, transformers >= 5.5)",
    "kernels": "Hub kernels: transformers' fallback when flash-attn is not installed",
    "bitsandbytes": "8-bit and 4-bit quantization (BitsAndBytesConfig)",
    "optimum": "Optimum tooling (BetterTransformer was removed in optimum 2.0)",
    "optimum-onnx": "ONNX export and ORTModel* (ONNX Runtime) inference",
    "onnxruntime": "ONNX Runtime on the CPU",
    "onnxruntime-gpu": "ONNX Runtime with CUDA/TensorRT execution providers",
    "nvidia-ml-py": "reading GPUs through NVML without a CUDA context",
}
_REQUIRED = {"torch", "transformers"}


class Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: Status
    value: str
    fix: str = ""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    items: list[Item]

    @property
    def worst(self) -> Status:
        order = ["ok", "info", "warning", "problem"]
        return max((i.status for i in self.items), key=order.index, default="ok")  # type: ignore[return-value]


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


def _bytes(value: int | Unavailable | None) -> str:
    number = known(value) if value is not None else None
    return f"{number / GiB:.1f} GiB" if number is not None else str(value)


def _host(env: Environment) -> Section:
    h = env.host
    return Section(title="Host", items=[
        Item(name="OS", status="ok", value=f"{h.os} ({h.machine})"),
        Item(name="Python", status="ok", value=h.python),
        Item(name="CPU", status="ok", value=f"{h.cpu} x {h.cpu_count}"),
        Item(name="RAM", status="ok", value=f"{_bytes(h.ram_total_bytes)} total, {_bytes(h.ram_available_bytes)} available"),
    ])


def _gpu_value(gpu: GpuInfo, env: Environment) -> str:
    arch = f"compute capability {gpu.compute_capability}" if gpu.compute_capability else f"{gpu.gfx_arch}"
    free = "" if isinstance(gpu.memory_free_bytes, Unavailable) else f", {_bytes(gpu.memory_free_bytes)} free"
    return f"{gpu.name}: {arch}, {_bytes(gpu.memory_total_bytes)}{free}"


def _gpus(env: Environment) -> Section:
    items: list[Item] = []
    if isinstance(env.gpus, Unavailable) or not env.gpus:
        reason = env.gpus.reason if isinstance(env.gpus, Unavailable) else "none in this target"
        items.append(Item(name="GPUs", status="info", value=f"none: {reason}"))
    else:
        for gpu in env.gpus:
            broken = any(isinstance(getattr(gpu, f), Unavailable) for f in ("compute_capability", "memory_total_bytes"))
            items.append(Item(name=f"GPU {gpu.index}", status="warning" if broken else "ok", value=_gpu_value(gpu, env),
                              fix="check nvidia-smi" if broken else ""))
            if gpu.mig_mode is True:
                items.append(Item(name=f"GPU {gpu.index} MIG", status="warning", value="MIG enabled"))
    if env.driver.driver_version:
        items.append(Item(name="Driver", status="ok",
                          value=f"{env.driver.driver_version} (CUDA driver API {env.driver.cuda_driver_version})"))
    items.append(Item(name="torch", status="ok" if isinstance(env.torch, TorchInfo) else "problem",
                      value=torch_summary(env), fix="" if isinstance(env.torch, TorchInfo) else "pip install torch"))
    return Section(title="GPUs", items=items)


def _dtypes(env: Environment) -> Section:
    items = []
    names = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
    for gpu in env.gpu_list:
        d = gpu.dtypes
        if isinstance(d, Unavailable):
            items.append(Item(name=gpu.name, status="warning", value=str(d)))
            continue
        value = "  ".join(f"{n} {'yes' if getattr(d, n) else 'no'}" for n in names)
        items.append(Item(name=f"GPU {gpu.index} {gpu.name}", status="ok", value=value,
                          fix="" if d.bf16 else "no native bf16: load in float16"))
    if not items:
        items.append(Item(name="CPU", status="info", value="fp32 (bf16/fp16 run, usually slower than fp32)"))
    return Section(title="dtype support (native)", items=items)


def _sdpa(env: Environment) -> Section:
    if not isinstance(env.torch, TorchInfo):
        return Section(title="SDPA backends", items=[Item(name="SDPA", status="problem", value=str(env.torch))])
    items = [
        Item(name=name, status="ok" if backend.usable is True else "info",
             value=("usable: " if backend.usable is True else "not usable: ") + backend.reason)
        for name, backend in env.torch.sdpa_backends.items()
    ]
    flex = env.torch.flex_attention
    items.append(Item(name="flex_attention", status="ok" if flex is True else "info",
                      value="available" if flex is True else str(flex)))
    return Section(title="SDPA backends", items=items)


def _kernel_runs(env: Environment) -> Section:
    """One tiny call per installed kernel on the GPU (advisor/probe/kernels.py): ran, failed (why), or not run."""
    reasons = {str(run.runs) for run in env.kernel_runs.values() if not isinstance(run.runs, bool)}
    if len(reasons) == 1 and all(not isinstance(run.runs, bool) for run in env.kernel_runs.values()):
        return Section(title="Kernel runs", items=[Item(name=", ".join(env.kernel_runs), status="info", value=reasons.pop())])
    items = []
    for name, run in env.kernel_runs.items():
        if run.runs is True:
            tried = ", ".join(sorted({c.dtype for c in run.cases}))
            dims = sorted({c.head_dim for c in run.cases if c.head_dim is not None})
            where = f"{tried}; head_dim {', '.join(map(str, dims))}" if dims else tried
            items.append(Item(name=name, status="ok", value=f"runs ({where})"))
        elif run.runs is False:
            items.append(Item(name=name, status="problem", value=f"fails: {env.kernel_failure(name)}"))
        else:
            items.append(Item(name=name, status="info", value=str(run.runs)))
    return Section(title="Kernel runs", items=items)


def _libraries(env: Environment) -> Section:
    items = []
    for dist, lib in env.libraries.items():
        if not lib.installed:
            required = dist in _REQUIRED
            items.append(Item(name=dist, status="problem" if required else "info",
                              value=f"missing: {_PURPOSE.get(dist, '')}", fix=f"pip install {dist}" if required else ""))
            continue
        value = f"{lib.version}" + (" (assumed)" if lib.assumed else "")
        status: Status = "ok"
        if lib.importable is False:
            status, value = "problem", f"{value}: installed but does not load: {lib.error}"
        elif isinstance(lib.importable, Unavailable):
            value += f" (import not checked: {lib.importable.reason})"
        elif lib.importable is True:
            value += ", imports and loads"
        for key, detail in lib.details.items():
            if key != "module" and (key != "available" or status == "problem"):
                value += f"; {key}: {', '.join(detail) if isinstance(detail, list) else detail}"
        items.append(Item(name=dist, status=status, value=value,
                          fix="reinstall a build matching this torch/CUDA" if status == "problem" else ""))
    return Section(title="Kernels and libraries", items=items)


def _model(rec: Recommendation) -> list[Section]:
    m = rec.model
    compat = [
        Item(name="model", status="ok", value=f"{m.display}, {m.num_layers} layers, {m.num_attention_heads} heads "
             f"({m.num_key_value_heads} KV), head_dim {m.head_dim}, stored {m.stored_dtype or 'unknown'}"),
    ]
    for impl, supported in rec.attention_support.items():
        compat.append(Item(name=impl, status="ok" if supported else "info",
                           value=("declared" if supported else "not declared") + f" by {rec.attention_support_source}"))
    plan: list[Item] = []
    if rec.chosen is not None and rec.memory is not None:
        plan.append(Item(name="use", status="ok", value=rec.chosen.label))
        plan.append(Item(name="from_pretrained", status="ok",
                         value=", ".join(f"{k}={v!r}" for k, v in (rec.from_pretrained or {}).items() if k != "quantization_config")
                         + (" + BitsAndBytesConfig" if rec.from_pretrained and "quantization_config" in rec.from_pretrained else "")))
        plan.append(Item(name="memory", status="ok",
                         value=f"{rec.memory.total_bytes / GiB:.1f} GiB of {rec.memory.budget_bytes / GiB:.1f} GiB"))
    else:
        plan.append(Item(name="use", status="problem", value="no configuration can run this model here",
                         fix="see the rejected options below"))
    for rej in rec.rejected:
        plan.append(Item(name=f"rejected {rej.option}", status="info", value=f"[{rej.rule}] {rej.reason}", fix=rej.fix))
    return [Section(title="Model compatibility", items=compat), Section(title="Recommendation", items=plan)]


def build_report(
    env: Environment, findings: list[Finding], recommendation: Recommendation | None = None,
    smoke: dict[str, Any] | None = None,
) -> DoctorReport:
    sections = [_host(env), _gpus(env), _dtypes(env), _sdpa(env), _libraries(env)]
    if env.kernel_runs:
        sections.append(_kernel_runs(env))
    if findings:
        sections.append(Section(title="Findings", items=[
            Item(name=f.code, status=_STATUS[f.severity], value=f.message, fix=f.fix) for f in findings  # type: ignore[arg-type]
        ]))
    if recommendation is not None:
        sections += _model(recommendation)
    if smoke is not None:
        sections.append(Section(title="Smoke test", items=[
            Item(name=a.get("label", "attempt"), status="ok" if a.get("ok") else "problem",
                 value=(f"load {a.get('load_seconds')} s, latency {a.get('latency_ms')} ms, "
                        f"max |diff| {a.get('max_abs_diff')}") if a.get("ok") else str(a.get("error")))
            for a in smoke.get("attempts", [])
        ]))
    problems = any(i.status == "problem" for s in sections for i in s.items)
    ok = not problems and (recommendation is None or recommendation.ok) and (smoke is None or bool(smoke.get("ok")))
    return DoctorReport(ok=ok, target=env.description or env.source, environment=env, sections=sections,
                        findings=findings, recommendation=recommendation, smoke=smoke)
