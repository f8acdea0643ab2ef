"""The quantization methods transformers loads (data/quant_methods.json) judged against one target.

Two readers: `doctor` lists what each method would need here (library and version, compute capability), and
the QUANT007 rule builds its fix from the methods that really quantize what bitsandbytes leaves alone: an
`nn.Linear` subclass is replaced by the methods whose rule is `isinstance` (torchao, HQQ, quanto), fused 3-D
experts only by those that say so in their source (fine-grained FP8, compressed-tensors, MXFP4 for gpt-oss).
No import here: the environment snapshot says what is installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from advisor.facts import ComputeCapability, Environment
from advisor.knowledge import data_dir, version_matches

__all__ = ["Method", "MethodStatus", "doctor_rows", "fixes_for", "load_methods", "method_status"]


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


@dataclass(frozen=True)
class MethodStatus:
    """What one method needs on this target and what is missing."""

    method: Method
    missing: tuple[str, ...]  # "torchao>=0.15.0 (not installed)" style, one per unmet library
    cc_ok: bool | None  # None: no GPU or no requirement
    gpu_ok: bool = True  # False: the method runs only on a GPU and the target has none

    @property
    def ready(self) -> bool:
        return not self.missing and self.cc_ok is not False and self.gpu_ok

    def needs(self) -> str:
        libs = ", ".join(f"{d}{s or ''}" for d, s in self.method.requires.items())
        cc = f"; compute capability >= {self.method.min_cc}" if self.method.min_cc else ""
        return f"{libs}{cc} ({self.method.device})"


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
               source=r["source"], rule_source=r["rule_source"])
        for r in rows
    )


def table_release() -> str:
    """The transformers release the table's source lines refer to."""
    return str(json.loads((data_dir() / "quant_methods.json").read_text(encoding="utf-8"))["transformers"])


def method_status(env: Environment, method: Method, weakest_cc: ComputeCapability | None) -> MethodStatus:
    """Which of the method's libraries are missing or too old here, and whether the GPU is new enough."""
    missing = []
    for dist, spec in method.requires.items():
        lib = env.library(dist)
        if not lib.installed:
            missing.append(f"{dist}{spec or ''} (not installed)")
        elif spec and not version_matches(lib.version, spec):
            missing.append(f"{dist}{spec} (installed {lib.version})")
    cc_ok = None if method.min_cc is None or weakest_cc is None else weakest_cc.as_tuple >= method.min_cc.as_tuple
    gpu_ok = bool(env.gpu_list) or "cpu" in method.device
    return MethodStatus(method=method, missing=tuple(missing), cc_ok=cc_ok, gpu_ok=gpu_ok)


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
        state = "installed here" if s.ready else "needs " + ", ".join(s.missing)
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
        if s.ready:
            have = ", ".join(f"{d} {env.version_of(d)}" for d in m.requires)
            rows.append((m.key, "ok", f"usable{scope}: {have}; {m.config}", ""))
            continue
        problems = list(s.missing)
        if s.cc_ok is False:
            problems.append(f"compute capability {weakest_cc} < {m.min_cc}")
        if not s.gpu_ok:
            problems.append("no GPU in this target")
        fix = " && ".join(f"pip install '{p.split(' ')[0]}'" for p in s.missing) if s.missing else ""
        rows.append((m.key, "info", f"not usable here{scope}: needs {s.needs()}; missing: {'; '.join(problems)}", fix))
    return rows
