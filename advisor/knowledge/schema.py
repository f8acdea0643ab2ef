"""Row models for the tables in `data/`: every fact carries the source it came from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from advisor.candidate import Dtype

__all__ = [
    "TABLE_SCHEMA_VERSION",
    "UNVERIFIED",
    "Reproduction",
    "RuntimeFact",
    "provenance_problem",
    "GpuRow",
    "GpuTable",
    "CapabilityRow",
    "CapabilityTable",
    "AttentionRequirement",
    "AttentionRequirementTable",
    "ArchitectureSupport",
    "AttentionSupportTable",
    "VersionConstraint",
    "LibraryTable",
    "ShippedModel",
]

TABLE_SCHEMA_VERSION = 1

UNVERIFIED = "unverified: read, not run"  # what a finding says after a fact no run showed (issue 28)


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reproduction(_Row):
    """What was run to show a runtime fact (issue 28: a fact about a release or a wheel comes from executing it):
    the command, the release or wheel it executed, and the committed file holding what it printed."""

    command: str = Field(min_length=8, description="The command that ran it, as typed.")
    ran: str = Field(min_length=3, description="The release(s) or wheel(s) it executed, and the machine.")
    output: str = Field(min_length=3, description="The committed file (repository path) with its result.")


def provenance_problem(row: Mapping[str, Any]) -> str | None:
    """Why a row stating runtime behaviour neither cites a reproduction nor says `verified: false` with its source;
    None when it does. The one check of the loaders below and of tests/unit/test_provenance.py."""
    reproduction = row.get("reproduction")
    if reproduction is not None:
        try:
            Reproduction.model_validate(reproduction)
        except ValueError as exc:
            return f"its reproduction is incomplete ({str(exc).splitlines()[0]})"
        return None
    if row.get("verified") is False:
        return None if str(row.get("source") or "").strip() else "verified: false without its source"
    return ("neither a reproduction (what was run, on which wheel or release) nor verified: false with its "
            "source")


class RuntimeFact(_Row):
    """A row stating what a release, wheel or kernel does when run: `reproduction` or `verified: false`."""

    verified: bool = Field(description="True only with a reproduction; false: read (docs, source), not run.")
    reproduction: Reproduction | None = None

    @model_validator(mode="after")
    def _cites_a_run(self) -> RuntimeFact:
        problem = provenance_problem(self.model_dump())
        if problem:
            raise ValueError(problem)
        return self


class _Table(_Row):
    schema_version: Literal[1] = 1
    description: str = ""


class GpuRow(_Row):
    """One card model. `memory_mib` is what NVML/ROCm report as total for that card."""

    name: str = Field(description="Canonical short name, used by --gpu (case-insensitive).")
    aliases: list[str] = Field(default_factory=list, description="Other names, including the NVML product name.")
    vendor: Literal["nvidia", "amd"] = "nvidia"
    architecture: str
    compute_capability: str | None = Field(None, pattern=r"^\d+\.\d+$")
    gfx_arch: str | None = None
    memory_mib: int = Field(gt=0)
    source: str = Field(min_length=8)
    # issue 30: how two of these cards talk by default (--gpu targets); the probe reads NVML instead
    interconnect: Literal["nvlink", "pcie", "unknown"] = "unknown"
    interconnect_source: str = ""

    @model_validator(mode="after")
    def _has_arch_id(self) -> GpuRow:
        if self.vendor == "nvidia" and self.compute_capability is None:
            raise ValueError(f"NVIDIA GPU {self.name} needs a compute_capability")
        if self.vendor == "amd" and self.gfx_arch is None:
            raise ValueError(f"AMD GPU {self.name} needs a gfx_arch")
        return self


class GpuTable(_Table):
    rows: list[GpuRow]


class CapabilityRow(RuntimeFact):
    """Native dtype features from a compute capability upwards (until the next row)."""

    min_compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    architecture: str
    tf32: bool
    fp16: bool
    bf16: bool
    fp8: bool
    int8: bool
    source: str = Field(min_length=8)


class AmdCapabilityRow(RuntimeFact):
    gfx_arch: str
    architecture: str
    fp16: bool
    bf16: bool
    fp8: bool
    int8: bool
    flash_attention_2: bool
    source: str = Field(min_length=8)


class CapabilityTable(_Table):
    nvidia: list[CapabilityRow]
    amd: list[AmdCapabilityRow]


class PackageLimit(_Row):
    """A limit of the kernel package that holds only for some of its releases (e.g. flash-attn < 2.7.3 accepts
    sm8x and sm90 only), with the release's own source line."""

    specifier: str = Field(description="PEP 440 specifier of the package releases this limit holds for.")
    max_compute_capability: str | None = None
    rocm: bool | None = None
    source: str = Field(min_length=8)


class CcHeadDims(_Row):
    """A head-size limit of the kernel that holds only on some GPU generations (flash-attn-4: <= 128 on SM100/SM110,
    bar 256), with the kernel's own source line (issue 29)."""

    min_compute_capability: str
    max_compute_capability: str = Field(description="Inclusive, by major version.")
    max_head_dim: int
    also: list[int] = Field(default_factory=list, description="Head sizes accepted above max_head_dim.")
    source: str = Field(min_length=8)


class AttentionRequirement(RuntimeFact):
    """What an attention implementation needs from the hardware and software."""

    impl: str
    package: str | None = Field(None, description="Distribution that must be installed, if any.")
    min_package_version: str | None = None
    min_compute_capability: str | None = None
    max_compute_capability: str | None = None
    dtypes: list[Dtype]
    max_head_dim: int | None = None
    head_dim_multiple: int | None = None
    cpu: bool
    rocm: bool
    min_transformers: str | None = None
    min_torch: str | None = None
    speed_rank: int = Field(description="Lower is faster when all else is equal.")
    notes: str = ""
    source: str = Field(min_length=8)
    covers: str = Field("", description="The versions of the kernel/library the source was checked at.")
    package_limits: list[PackageLimit] = Field(default_factory=list)
    cc_head_dims: list[CcHeadDims] = Field(default_factory=list)


class AttentionRequirementTable(_Table):
    rows: list[AttentionRequirement]


class ArchitectureSupport(_Row):
    model_type: str
    class_name: str = Field(alias="class")
    eager: bool = True
    sdpa: bool
    flash_attention_2: bool
    flash_attention_3: bool
    flex_attention: bool
    flash_attention_4: bool | None = Field(None, description="Executed acceptance (issue 28); None: not stored.")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AttentionSupportTable(_Table):
    transformers: str
    generated_by: str
    source: str
    architectures: list[ArchitectureSupport]
    skipped: list[str] = Field(default_factory=list)


class VersionConstraint(RuntimeFact):
    """A library requirement, optionally only while another library is inside a version range."""

    code: str = Field(description="Stable key the rules refer to.")
    library: str
    specifier: str = Field(description="PEP 440 specifier the library must satisfy.")
    when_library: str | None = None
    when_specifier: str | None = None
    message: str
    fix: str
    source: str = Field(min_length=8)
    covers: str = Field("", description="The versions the source was checked at.")


class LibraryTable(_Table):
    rows: list[VersionConstraint]


class ShippedModel(_Row):
    """A popular model's config.json, shipped so plans work offline."""

    hub_id: str
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(min_length=8)
    config: dict[str, object]
