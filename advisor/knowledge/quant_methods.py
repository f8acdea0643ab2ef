"""The quantization methods transformers loads (data/quant_methods.json), as typed rows.

What each method needs is judged against one target in `advisor.rules.method_readiness`. Two readers there:
`doctor` lists what each method would need here (library and version, compute capability), and
the QUANT007 rule builds its fix from the methods that really quantize what bitsandbytes leaves alone: an
`nn.Linear` subclass is replaced by the methods whose rule is `isinstance` (torchao, HQQ, quanto), fused 3-D
experts only by those that say so in their source (fine-grained FP8, compressed-tensors, MXFP4 for gpt-oss).
No import here: the environment snapshot says what is installed.

A third reader is the planner: a method whose row has a `candidate` block (quanto int8, HQQ 4-bit, fine-grained
FP8, FBGEMM FP8: on-the-fly methods whose config is a plain mapping) becomes a plan candidate on a target where
`advisor.rules.method_readiness.method_status` says it is ready, and QUANT008 judges it there. torchao is left out: its 5.x config holds a
torchao object (`Int8WeightOnlyConfig()`), not a mapping the plan JSON can carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from advisor.facts import ComputeCapability
from advisor.knowledge import data_dir

__all__ = [
    "METHOD_QUANTIZATIONS",
    "GpuDtype",
    "Method",
    "MethodCandidate",
    "handles",
    "load_methods",
    "method_for",
    "method_row",
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
    verified: bool = False  # True where `executed` replaces the runtime claims read from source
    executed: str | None = None  # the executed table that answers for it (data/quantizer_acceptance.json)


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
               gpu_dtype=GpuDtype(**r["gpu_dtype"]) if r["gpu_dtype"] else None,
               verified=r["verified"], executed=r["executed"])
        for r in rows
    )


def method_for(quantization: str) -> Method | None:
    """The method planned under a `Candidate.quantization` key (None for none / bnb 8bit / 4bit)."""
    return next((m for m in load_methods() if m.candidate and m.candidate.key == quantization), None)


def method_row(key: str) -> Method | None:
    """The row of a pre-quantized checkpoint's method (`CheckpointQuantization.method_key`), if the table has it."""
    return next((m for m in load_methods() if m.key == key), None)


@lru_cache(maxsize=64)
def validate_line(quantizer: str) -> tuple[str, int] | None:
    """(release, line) of `def validate_environment` in the installed transformers' `quantizer` file, read as text
    (importing a quantizer module pulls in its library); None when transformers or the file is not here."""
    from advisor.knowledge.quantizable_share import installed_transformers

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


def handles(method: Method, kind: str | None) -> bool:
    """Whether `method` quantizes what bitsandbytes leaves alone in a model of this reason `kind`."""
    if kind == "linear-subclass":
        return method.linear_rule == "isinstance" or method.mode == "pre-quantized"
    if kind == "fused-experts":
        return method.fused_experts is True
    return kind is None

