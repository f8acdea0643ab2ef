"""`advisor smoke --runtime onnxruntime`: prove the Optimum + ONNX Runtime path of the guide on this machine.

Before anything heavy the installed versions are checked against optimum-onnx's own pin on transformers
(read from its installed metadata; when it is not installed, from the shipped constraint row, which was
read from the newest wheel on PyPI). Outside the pin the run stops with exit 1, the reason, and the exact
environment that would work. Inside it, a child (`advisor.prove.onnx_worker`) exports the model, loads it with
the matching ORTModelFor... class on the best execution provider, and compares its outputs with PyTorch
float32 on the same token ids.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from advisor.errors import OnnxEnvironmentError, SmokeTestError
from advisor.facts import SCHEMA_VERSION
from advisor.io.rundir import temp_dir
from advisor.isolation.child import run_child
from advisor.model.spec import ModelSpec
from advisor.plan.recommend import auto_class_name
from advisor.prove.smoke import validate_checkpoint
from advisor.prove.smoke_worker import TOLERANCES

__all__ = ["OnnxPin", "OnnxSmokeReport", "check_onnx_environment", "optimum_onnx_pin", "run_onnx_smoke"]

WORKER = "advisor.prove.onnx_worker"

# auto class -> (optimum export task, ORTModel class)
_TASKS = {
    "AutoModelForCausalLM": ("text-generation", "ORTModelForCausalLM"),
    "AutoModelForSequenceClassification": ("text-classification", "ORTModelForSequenceClassification"),
    "AutoModelForSeq2SeqLM": ("text2text-generation", "ORTModelForSeq2SeqLM"),
    "AutoModel": ("feature-extraction", "ORTModelForFeatureExtraction"),
}


class OnnxPin(BaseModel):
    """optimum-onnx's requirement on transformers, and where it was read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optimum_onnx: str
    transformers: str
    onnxruntime: str
    source: str


class OnnxSmokeReport(BaseModel):
    """Export, load and run times, the provider used, and the largest difference from PyTorch float32."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    runtime: str = "onnxruntime"
    model: str
    task: str
    ort_class: str
    provider: str | None = None
    providers_available: list[str] = []
    versions: dict[str, str] = {}
    export_seconds: float | None = None
    load_seconds: float | None = None
    latency_ms: float | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    inputs: dict[str, list[int]] = {}
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def _installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _requirement(dist: str, name: str) -> str | None:
    """The specifier `dist` (installed) puts on `name`, ignoring extras-only requirements."""
    for line in md.requires(dist) or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower() == name and (req.marker is None or "extra" not in str(req.marker)):
            return str(req.specifier)
    return None


def optimum_onnx_pin() -> OnnxPin:
    """From the installed optimum-onnx if there is one, else from the shipped row (read from its PyPI wheel)."""
    installed = _installed("optimum-onnx")
    if installed is not None:
        spec = _requirement("optimum-onnx", "transformers")
        if spec is not None:
            return OnnxPin(optimum_onnx=installed, transformers=spec, onnxruntime=">=1.18.0",
                           source=f"installed optimum-onnx {installed} metadata")
    from advisor.knowledge import load_knowledge

    row = next(r for r in load_knowledge().libraries.rows if r.code == "optimum-onnx-transformers-pin")
    version = (row.when_specifier or "").lstrip("<>=~!") or "0.1.0"
    return OnnxPin(optimum_onnx=version, transformers=row.specifier, onnxruntime=">=1.18.0", source=row.source)


def _newest_release(spec: str) -> str | None:
    """The newest transformers release the shipped history knows that satisfies `spec`."""
    from advisor.knowledge.history import releases

    allowed = [v for v in releases() if Version(v) in SpecifierSet(spec)]
    return max(allowed, key=Version) if allowed else None


def working_environment(pin: OnnxPin) -> str:
    """The exact commands for an environment where the ONNX path works, next to this one."""
    torch = (_installed("torch") or "").split("+")[0]
    transformers = _newest_release(pin.transformers)
    tf = f"transformers=={transformers}" if transformers else f"transformers{pin.transformers}"
    torch_req = f"torch=={torch}" if torch else "torch"
    root = Path(__file__).resolve().parents[2]
    advisor = f"-e {root}" if (root / "pyproject.toml").is_file() else "inference-advisor"
    return (f"python3 -m venv .venv-onnx && .venv-onnx/bin/pip install {torch_req} '{tf}' "
            f"'optimum-onnx=={pin.optimum_onnx}' 'onnxruntime{pin.onnxruntime}' && .venv-onnx/bin/pip install {advisor}")


def check_onnx_environment() -> tuple[OnnxPin, dict[str, str]]:
    """Raise OnnxEnvironmentError (exit 1) when the installed set cannot export and run ONNX models."""
    pin = optimum_onnx_pin()
    versions = {d: v for d in ("torch", "transformers", "optimum-onnx", "onnxruntime", "onnxruntime-gpu")
                if (v := _installed(d)) is not None}
    problems = []
    tf = versions.get("transformers")
    try:
        outside = tf is not None and Version(tf) not in SpecifierSet(pin.transformers)
    except InvalidVersion:
        outside = False
    if tf is None:
        problems.append("transformers is not installed")
    elif outside:
        problems.append(f"transformers {tf} is installed, but optimum-onnx {pin.optimum_onnx} requires "
                        f"transformers{pin.transformers} ({pin.source})")
    if "optimum-onnx" not in versions:
        problems.append("optimum-onnx is not installed")
    if "onnxruntime" not in versions and "onnxruntime-gpu" not in versions:
        problems.append("onnxruntime is not installed")
    if "torch" not in versions:
        problems.append("torch is not installed (the export traces the PyTorch model)")
    if problems:
        raise OnnxEnvironmentError("; ".join(problems) + f". An environment that works: {working_environment(pin)}")
    return pin, versions


def task_for(model: ModelSpec) -> tuple[str, str]:
    auto = auto_class_name(model)
    if auto not in _TASKS:
        raise SmokeTestError(f"{model.name} ({auto}) has no ONNX smoke test here; supported: "
                             + ", ".join(sorted(_TASKS)))
    return _TASKS[auto]


def run_onnx_smoke(model: ModelSpec, *, timeout: float = 600, batch: int = 2, seq_len: int = 16,
                   repeats: int = 10) -> OnnxSmokeReport:
    """Check the versions, then export, load, run and compare in a child; the report says what happened."""
    validate_checkpoint(model)
    task, ort_class = task_for(model)
    _, versions = check_onnx_environment()
    atol, rtol = TOLERANCES["float32"]
    with temp_dir("onnx-") as tmp:  # in this run's folder: removed on exit, swept by the next run after a SIGKILL
        request: dict[str, Any] = {
            "path": model.path, "auto_class": auto_class_name(model), "task": task, "ort_class": ort_class,
            "output": str(Path(tmp) / "onnx"), "batch": batch, "seq_len": seq_len, "repeats": repeats,
            "is_encoder_decoder": model.is_encoder_decoder,
        }
        result = run_child(WORKER, request, timeout)
    tolerance = max(atol, rtol * float(result.get("reference_max_abs") or 0.0))
    ok = bool(result.get("ok"))
    error = result.get("error")
    diff = result.get("max_abs_diff")
    if ok and (diff is None or not diff <= tolerance):
        ok, error = False, f"max |diff| {diff} from PyTorch float32 exceeds the tolerance {tolerance:.3g}"
    return OnnxSmokeReport(
        ok=ok, model=model.display, task=task, ort_class=ort_class, provider=result.get("provider"),
        providers_available=result.get("providers_available") or [],
        versions={**versions, **{k: str(v) for k, v in (result.get("versions") or {}).items()}},
        export_seconds=result.get("export_seconds"), load_seconds=result.get("load_seconds"),
        latency_ms=result.get("latency_ms"), max_abs_diff=diff, tolerance=tolerance,
        inputs=result.get("inputs") or {}, error=error,
    )


