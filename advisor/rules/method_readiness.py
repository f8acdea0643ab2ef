"""Is each quantization method ready on this target? Its libraries at the version transformers asks for, the
GPU's capability, the Hub kernel the release loads for it, and whether the release quantizes it on the fly.

The judgement half of what was `advisor/knowledge/quant_methods.py` and `advisor/knowledge/onthefly.py`: the tables
(`advisor.knowledge.quant_methods`, `advisor.knowledge.onthefly`) say what each method needs, this module says
what is missing on one target, for the QUANT rules, the planner's candidates and doctor's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.facts import ComputeCapability, Environment
from advisor.findings import Severity
from advisor.knowledge import version_matches
from advisor.knowledge.onthefly import OnTheFly, fact_key, fact_where, last_release_that_can, onthefly
from advisor.knowledge.quant_methods import Method, load_methods, table_release, validate_line
from advisor.knowledge.quantizer_acceptance import QuantizerVerdict, Unknown, quantizer_verdict
from advisor.knowledge.releases import load_release_constraints
from advisor.rules.fp8_kernel import KernelNeed, hub_kernel_need

__all__ = [
    "MethodStatus",
    "checkpoint_verdict",
    "doctor_rows",
    "fixes_for",
    "method_status",
    "onthefly_alternatives",
    "ready_quantizations",
]


@dataclass(frozen=True)
class MethodStatus:
    """What one method needs on this target and what is missing."""

    method: Method
    missing: tuple[str, ...]  # "torchao>=0.15.0 (not installed)" style, one per unmet library
    cc_ok: bool | None  # None: no GPU or no requirement
    gpu_ok: bool = True  # False: the method runs only on a GPU and the target has none
    kernel: KernelNeed | None = None  # a Hub kernel the target's transformers loads for it (fine-grained FP8, 5.4+)
    onthefly: OnTheFly | None = None  # whether the target's transformers quantizes it while loading (advisor/knowledge/onthefly.py)

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


def ready_quantizations(env: Environment, weakest_cc: ComputeCapability | None, placement: str, *,
                        allow_download: bool = False, cache: bool = True) -> list[str]:
    """The method candidates a rule lets run on this target: libraries installed at the version transformers
    wants, compute capability met, a GPU where the method needs one (`placement` "cpu" needs "cpu" in the
    method's device), and the Hub kernel the release loads for it usable (cached, or `allow_download`)."""
    out = []
    for m in load_methods():
        if m.candidate is None:
            continue
        s = method_status(env, m, weakest_cc, allow_download=allow_download, cache=cache)
        if not s.ready or (placement == "cpu" and "cpu" not in m.device):
            continue
        out.append(m.candidate.key)
    return out


def method_status(env: Environment, method: Method, weakest_cc: ComputeCapability | None, *,
                  allow_download: bool = False, cache: bool = True) -> MethodStatus:
    """Which of the method's libraries are missing or too old here, whether the GPU is new enough, and whether
    the Hub kernel the target's transformers loads for it is usable (advisor/rules/fp8_kernel.py)."""
    missing = []
    for dist, spec in method.requires.items():
        lib = env.library(dist)
        if not lib.installed:
            missing.append(f"{dist}{spec or ''} (not installed)")
        elif spec and not version_matches(lib.version, spec):
            missing.append(f"{dist}{spec} (installed {lib.version})")
    cc_ok = None if method.min_cc is None or weakest_cc is None else weakest_cc.as_tuple >= method.min_cc.as_tuple
    gpu_ok = bool(env.gpu_list) or "cpu" in method.device
    kernel = hub_kernel_need(env, method.key, allow_download=allow_download, cache=cache)
    release = onthefly(env.version_of("transformers"), fact_key(method.key), cache=cache) if method.mode != "pre-quantized" else None
    return MethodStatus(method=method, missing=tuple(missing), cc_ok=cc_ok, gpu_ok=gpu_ok, kernel=kernel,
                        onthefly=release)


def fixes_for(kind: str, model_type: str, env: Environment, weakest_cc: ComputeCapability | None, *,
              cache: bool = True) -> list[str]:
    """Sourced alternatives for a model bitsandbytes barely quantizes, ready ones first.

    `kind` is the reason from advisor.model.quantizable (`linear-subclass`, `fused-experts`, ...).
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
        status = method_status(env, m, weakest_cc, cache=cache)
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


def doctor_rows(env: Environment, weakest_cc: ComputeCapability | None, *,
                cache: bool = True) -> list[tuple[str, Severity, str, str]]:
    """(name, status, value, fix) per method for doctor: what it needs here and what is missing.

    `ok` when its libraries are installed and the GPU is new enough, `info` otherwise (none is required).
    """
    rows = []
    for m in load_methods():
        s = method_status(env, m, weakest_cc, cache=cache)
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
            rows.append((m.key, Severity.OK, f"usable{scope}: {have}{kernel}; {m.config}{planned}{caveat}{cite}", ""))
            continue
        problems = s.problems
        if s.cc_ok is False:
            problems.append(f"compute capability {weakest_cc} < {m.min_cc}")
        if not s.gpu_ok:
            problems.append("no GPU in this target")
        value = f"not usable here{scope}: needs {s.needs()}; missing: {'; '.join(problems)}{cite}{kernel}"
        fix = " && ".join(s.fixes) if s.loads or s.onthefly is None else \
            "; or ".join(onthefly_alternatives(env, weakest_cc, s.onthefly, cache=cache))
        rows.append((m.key, Severity.INFO, value, fix))
    return rows


def onthefly_alternatives(env: Environment, weakest_cc: ComputeCapability | None, verdict: OnTheFly,
                          placement: str = "gpu", *, cache: bool = True) -> list[str]:
    """Fixes that work when `verdict` says no: the planned methods this release does quantize on the fly and
    that are ready on this target (bitsandbytes when installed), then the newest older release that quantizes
    the method (HQQ: 4.57.6, the old path)."""
    out: list[str] = []
    if env.library("bitsandbytes").installed and placement != "cpu":
        can = onthefly(verdict.release, "bitsandbytes_4bit", cache=cache)
        if can is not None and can.ok and verdict.key != "bitsandbytes_4bit":
            out.append(f"--quantize 4bit (bitsandbytes NF4, installed here; {can.cite})")
    for m in load_methods():
        if m.candidate is None or m.key == verdict.key:
            continue
        status = method_status(env, m, weakest_cc, cache=cache)
        if not status.ready or (placement == "cpu" and "cpu" not in m.device):
            continue
        cite = f"; {status.onthefly.cite}" if status.onthefly else ""
        out.append(f"--quantize {m.candidate.key} ({m.name}, installed here{cite})")
    older = last_release_that_can(verdict.key, verdict.release, cache=cache)
    if older is not None:
        run = load_release_constraints(cache=cache).at(f"onthefly_{verdict.key}", older)
        out.append(f"pip install 'transformers=={older}' (quantizes it while loading: transformers {older} "
                   f"{fact_where(run, older)} create_quantized_param)")
    return out


def checkpoint_verdict(env: Environment, method_key: str, placement: str, weakest_cc: ComputeCapability | None, *,
                       cache: bool = True) -> QuantizerVerdict | Unknown | None:
    """What the target's transformers does with a pre-quantized checkpoint of this method on this candidate's
    device, executed (data/quantizer_acceptance.json): the packages the run varies that are installed here, CUDA
    or not, the weakest GPU's compute capability. None where the run says nothing (undecided, or unknown
    capability)."""
    from advisor.knowledge.quantizer_acceptance import table

    data = table() or {}
    run = (data.get("methods") or {}).get(method_key, {})
    if not run.get("pre_quantized"):  # bitsandbytes is run as a config a user passes: not a checkpoint's case
        return None
    packages = run.get("packages", [])
    installed = {p for p in packages if env.library(p).installed}
    found = quantizer_verdict(method_key, env.version_of("transformers"), on_gpu=placement != "cpu" and bool(env.gpu_list),
                              cc=weakest_cc, installed_packages=installed, cache=cache)
    if isinstance(found, QuantizerVerdict) and found.case.verdict == "undecided":
        return None
    return found
