"""The quantization methods transformers loads (data/quant_methods.json) judged against one target.

Two readers: `doctor` lists what each method would need here (library and version, compute capability), and
the QUANT007 rule builds its fix from the methods that really quantize what bitsandbytes leaves alone: an
`nn.Linear` subclass is replaced by the methods whose rule is `isinstance` (torchao, HQQ, quanto), fused 3-D
experts only by those that say so in their source (fine-grained FP8, compressed-tensors, MXFP4 for gpt-oss).
No import here: the environment snapshot says what is installed.

A third reader is the planner: a method whose row has a `candidate` block (quanto int8, HQQ 4-bit, fine-grained
FP8, FBGEMM FP8: on-the-fly methods whose config is a plain mapping) becomes a plan candidate on a target where
`method_status` says it is ready, and QUANT008 judges it there. torchao is left out: its 5.x config holds a
torchao object (`Int8WeightOnlyConfig()`), not a mapping the plan JSON can carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from advisor.facts import ComputeCapability, Environment
from advisor.fp8_kernel import KernelNeed, hub_kernel_need
from advisor.knowledge import data_dir, version_matches
from advisor.quant_onthefly import OnTheFly, fact_key, onthefly, onthefly_alternatives

if TYPE_CHECKING:
    from advisor.model import ModelSpec

__all__ = [
    "METHOD_QUANTIZATIONS",
    "GpuDtype",
    "Method",
    "MethodCandidate",
    "MethodStatus",
    "doctor_rows",
    "fixes_for",
    "handles",
    "load_methods",
    "method_for",
    "method_row",
    "method_status",
    "quantizable_by",
    "ready_quantizations",
    "validate_line",
]

# The candidate keys of data/quant_methods.json, in the planner's order (a test keeps them equal to the table's).
METHOD_QUANTIZATIONS = ("hqq-4bit", "quanto-int8", "fp8", "fbgemm-fp8")


@dataclass(frozen=True)
class MethodCandidate:
    """How a method is planned: its `Candidate.quantization` key, weight bits and from_pretrained config.

    `quantization_config` is what from_pretrained hands to `AutoQuantizationConfig.from_dict`, so it must be the
    serialised form the config class reads back to the same object as `python` (HQQ: `HqqConfig.to_dict()`,
    not its constructor arguments); `source` says where that shape is read from."""

    key: str
    bits: int
    quantization_config: dict[str, Any]
    python: str
    source: str = ""


@dataclass(frozen=True)
class GpuDtype:
    """The dtype a method's quantizer wants on a GPU (its `update_dtype`), why, and the line that says so."""

    dtype: str
    why: str
    source: str


@dataclass(frozen=True)
class Method:
    """One row of data/quant_methods.json."""

    key: str
    name: str
    config: str
    mode: str  # on-the-fly | pre-quantized | both
    requires: dict[str, str | None]
    device: str
    min_cc: ComputeCapability | None
    linear_rule: str  # exact | isinstance | checkpoint
    fused_experts: bool | None
    model_types: tuple[str, ...] | None
    source: str  # where the requirements are read from
    rule_source: str  # the line that decides which modules it replaces
    quantizer: str = ""  # quantizers/quantizer_*.py: its validate_environment states the requirements
    candidate: MethodCandidate | None = None
    gpu_dtype: GpuDtype | None = None


@dataclass(frozen=True)
class MethodStatus:
    """What one method needs on this target and what is missing."""

    method: Method
    missing: tuple[str, ...]  # "torchao>=0.15.0 (not installed)" style, one per unmet library
    cc_ok: bool | None  # None: no GPU or no requirement
    gpu_ok: bool = True  # False: the method runs only on a GPU and the target has none
    kernel: KernelNeed | None = None  # a Hub kernel the target's transformers loads for it (fine-grained FP8, 5.4+)
    onthefly: OnTheFly | None = None  # whether the target's transformers quantizes it while loading (advisor/quant_onthefly.py)

    @property
    def ready(self) -> bool:
        return (not self.missing and self.cc_ok is not False and self.gpu_ok and (self.kernel is None or self.kernel.ok)
                and self.loads)

    @property
    def loads(self) -> bool:
        """False when the target's transformers cannot quantize this on-the-fly method while loading."""
        return self.onthefly is None or self.onthefly.ok or self.method.mode == "pre-quantized"

    @property
    def problems(self) -> list[str]:
        """What is missing: the release's on-the-fly path, libraries, then the Hub kernel."""
        release = [self.onthefly.problem] if not self.loads and self.onthefly and self.onthefly.problem else []
        return [*release, *self.missing, *(self.kernel.problems if self.kernel else ())]

    def blockers(self, weakest_cc: ComputeCapability | None, placement: str, *, checkpoint: bool = False) -> list[str]:
        """`problems` plus the GPU's capability and the candidate's device, for a rule's message. `checkpoint`:
        loading a pre-quantized checkpoint, where the release's on-the-fly path does not matter."""
        out = [*self.missing, *(self.kernel.problems if self.kernel else ())] if checkpoint else self.problems
        if self.cc_ok is False:
            out.append(f"compute capability {weakest_cc} < {self.method.min_cc}")
        if not self.gpu_ok or (placement == "cpu" and "cpu" not in self.method.device):
            out.append(f"it runs on {self.method.device}")
        return out

    @property
    def fixes(self) -> list[str]:
        """The commands that supply what is missing, in order."""
        pip = [f"pip install '{p.split(' ')[0]}'" for p in self.missing]
        return [*pip, *(f for f in (self.kernel.fixes if self.kernel else ()) if f not in pip)]

    def needs(self) -> str:
        libs = ", ".join(f"{d}{s or ''}" for d, s in self.method.requires.items())
        kernel = f", {self.kernel.needs()}" if self.kernel else ""
        cc = f"; compute capability >= {self.method.min_cc}" if self.method.min_cc else ""
        return f"{libs}{kernel}{cc} ({self.method.device})"


def _cc(raw: str | None) -> ComputeCapability | None:
    return ComputeCapability.parse(raw) if raw else None


@lru_cache(maxsize=1)
def load_methods() -> tuple[Method, ...]:
    """The table, validated by construction (a missing key raises at load)."""
    raw = json.loads((data_dir() / "quant_methods.json").read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = raw["methods"]
    return tuple(
        Method(key=r["key"], name=r["name"], config=r["config"], mode=r["mode"], requires=dict(r["requires"]),
               device=r["device"], min_cc=_cc(r["min_cc"]), linear_rule=r["linear_rule"],
               fused_experts=r["fused_experts"], model_types=tuple(r["model_types"]) if r["model_types"] else None,
               source=r["source"], rule_source=r["rule_source"], quantizer=r["quantizer"],
               candidate=MethodCandidate(**r["candidate"]) if r["candidate"] else None,
               gpu_dtype=GpuDtype(**r["gpu_dtype"]) if r["gpu_dtype"] else None)
        for r in rows
    )


def method_for(quantization: str) -> Method | None:
    """The method planned under a `Candidate.quantization` key (None for none / bnb 8bit / 4bit)."""
    return next((m for m in load_methods() if m.candidate and m.candidate.key == quantization), None)


def method_row(key: str) -> Method | None:
    """The row of a pre-quantized checkpoint's method (`CheckpointQuantization.method_key`), if the table has it."""
    return next((m for m in load_methods() if m.key == key), None)


def ready_quantizations(env: Environment, weakest_cc: ComputeCapability | None, placement: str, *,
                        allow_download: bool = False) -> list[str]:
    """The method candidates a rule lets run on this target: libraries installed at the version transformers
    wants, compute capability met, a GPU where the method needs one (`placement` "cpu" needs "cpu" in the
    method's device), and the Hub kernel the release loads for it usable (cached, or `allow_download`)."""
    out = []
    for m in load_methods():
        if m.candidate is None:
            continue
        s = method_status(env, m, weakest_cc, allow_download=allow_download)
        if not s.ready or (placement == "cpu" and "cpu" not in m.device):
            continue
        out.append(m.candidate.key)
    return out


@lru_cache(maxsize=64)
def validate_line(quantizer: str) -> tuple[str, int] | None:
    """(release, line) of `def validate_environment` in the installed transformers' `quantizer` file, read as text
    (importing a quantizer module pulls in its library); None when transformers or the file is not here."""
    from advisor.quantizable import installed_transformers

    found = installed_transformers()
    if found is None:
        return None
    folder, release = found
    try:
        lines = (folder / quantizer).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    number = next((i for i, line in enumerate(lines, 1) if line.strip().startswith("def validate_environment(")), None)
    return (release, number) if number else None


def table_release() -> str:
    """The transformers release the table's source lines refer to."""
    return str(json.loads((data_dir() / "quant_methods.json").read_text(encoding="utf-8"))["transformers"])


def method_status(env: Environment, method: Method, weakest_cc: ComputeCapability | None, *,
                  allow_download: bool = False) -> MethodStatus:
    """Which of the method's libraries are missing or too old here, whether the GPU is new enough, and whether
    the Hub kernel the target's transformers loads for it is usable (advisor/fp8_kernel.py)."""
    missing = []
    for dist, spec in method.requires.items():
        lib = env.library(dist)
        if not lib.installed:
            missing.append(f"{dist}{spec or ''} (not installed)")
        elif spec and not version_matches(lib.version, spec):
            missing.append(f"{dist}{spec} (installed {lib.version})")
    cc_ok = None if method.min_cc is None or weakest_cc is None else weakest_cc.as_tuple >= method.min_cc.as_tuple
    gpu_ok = bool(env.gpu_list) or "cpu" in method.device
    kernel = hub_kernel_need(env, method.key, allow_download=allow_download)
    release = onthefly(env.version_of("transformers"), fact_key(method.key)) if method.mode != "pre-quantized" else None
    return MethodStatus(method=method, missing=tuple(missing), cc_ok=cc_ok, gpu_ok=gpu_ok, kernel=kernel,
                        onthefly=release)


def fixes_for(kind: str, model_type: str, env: Environment, weakest_cc: ComputeCapability | None) -> list[str]:
    """Sourced alternatives for a model bitsandbytes barely quantizes, ready ones first.

    `kind` is the reason from advisor.quantizable (`linear-subclass`, `fused-experts`, ...).
    """
    release = table_release()
    picked: list[MethodStatus] = []
    for m in load_methods():
        if m.key == "bitsandbytes" or (m.model_types and model_type not in m.model_types):
            continue
        if kind == "linear-subclass" and not (m.linear_rule == "isinstance" or m.mode == "pre-quantized"):
            continue
        if kind == "fused-experts" and m.fused_experts is not True:
            continue
        if kind not in ("linear-subclass", "fused-experts") and m.mode == "on-the-fly" and m.linear_rule == "exact":
            continue
        status = method_status(env, m, weakest_cc)
        if status.cc_ok is False or not status.gpu_ok:
            continue
        picked.append(status)
    picked.sort(key=lambda s: (not s.ready, s.method.mode == "pre-quantized"))
    what = {"linear-subclass": "replaces nn.Linear subclasses", "fused-experts": "quantizes fused experts"}
    out = []
    for s in picked:
        m = s.method
        state = "installed here" if s.ready else "needs " + ", ".join(s.problems)
        cc = f", compute capability >= {m.min_cc}" if m.min_cc else ""
        does = what.get(kind, "replaces linear layers") if m.mode != "pre-quantized" else "a pre-quantized checkpoint"
        out.append(f"{m.config} ({state}{cc}; {does}: transformers {release} {m.rule_source})")
    return out


def doctor_rows(env: Environment, weakest_cc: ComputeCapability | None) -> list[tuple[str, str, str, str]]:
    """(name, status, value, fix) per method for doctor: what it needs here and what is missing.

    `ok` when its libraries are installed and the GPU is new enough, `info` otherwise (none is required).
    """
    rows = []
    for m in load_methods():
        s = method_status(env, m, weakest_cc)
        scope = " (gpt-oss only)" if m.model_types else ""
        read = validate_line(m.quantizer) if m.quantizer else None
        cite = f" [transformers {read[0]} {m.quantizer}:{read[1]} validate_environment]" if read else \
            f" [transformers {table_release()} {m.source.split(' ')[0]}]"
        kernel = f"; {s.kernel.repo} ({s.kernel.ref}) [{s.kernel.cite}]" if s.kernel else ""
        if s.ready:
            have = ", ".join(f"{d} {env.version_of(d)}" for d in m.requires)
            if s.kernel:
                have += f", kernels {env.version_of('kernels')}"
            planned = f"; planned as --quantize {m.candidate.key}" if m.candidate else ""
            caveat = "".join(f"; {w}" for w in s.kernel.warnings) if s.kernel else ""
            rows.append((m.key, "ok", f"usable{scope}: {have}{kernel}; {m.config}{planned}{caveat}{cite}", ""))
            continue
        problems = s.problems
        if s.cc_ok is False:
            problems.append(f"compute capability {weakest_cc} < {m.min_cc}")
        if not s.gpu_ok:
            problems.append("no GPU in this target")
        value = f"not usable here{scope}: needs {s.needs()}; missing: {'; '.join(problems)}{cite}{kernel}"
        fix = " && ".join(s.fixes) if s.loads or s.onthefly is None else \
            "; or ".join(onthefly_alternatives(env, weakest_cc, s.onthefly))
        rows.append((m.key, "info", value, fix))
    return rows


def handles(method: Method, kind: str | None) -> bool:
    """Whether `method` quantizes what bitsandbytes leaves alone in a model of this reason `kind`."""
    if kind == "linear-subclass":
        return method.linear_rule == "isinstance" or method.mode == "pre-quantized"
    if kind == "fused-experts":
        return method.fused_experts is True
    return kind is None


def quantizable_by(model: ModelSpec, method: Method) -> int:
    """Parameters `method` stores in its format: what bitsandbytes replaces, or, where the method also takes what
    bitsandbytes leaves (an nn.Linear subclass for an isinstance rule, fused experts for FP8), every weight but
    the input and output embeddings (`vocab_size x hidden_size` each: the methods skip `lm_head` too)."""
    from advisor.quantizable import kind_of

    kind = kind_of(model.quantizable_note) if model.quantizable_note else None
    if kind is None or not handles(method, kind):
        return model.quantizable_param_count
    embeddings = 2 * model.vocab_size * model.hidden_size
    return max(model.quantizable_param_count, model.param_count - embeddings)
