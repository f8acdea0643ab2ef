"""The environment snapshot: everything the rules may know about a machine.

Probing fills it once; rules, planner and renderers only read it. It is frozen and JSON-round-trips
exactly, so a snapshot taken on a GPU box can be planned against from a laptop or CI runner.
A field that could not be read holds `Unavailable(reason=...)`: unknown is never False.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "Unavailable",
    "ComputeCapability",
    "DtypeSupport",
    "GpuInfo",
    "SdpaBackend",
    "TorchInfo",
    "LibraryInfo",
    "HostInfo",
    "Environment",
    "known",
]

SCHEMA_VERSION = 1

T = TypeVar("T")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Unavailable(_Frozen):
    """A value that could not be read, and why."""

    unavailable: Literal[True] = True
    reason: str

    def __bool__(self) -> bool:  # so `if facts.x:` never mistakes "unknown" for a truthy value
        return False

    def __str__(self) -> str:
        return f"unavailable ({self.reason})"


def known(value: T | Unavailable) -> T | None:
    """Return the value, or None when it is Unavailable."""
    return None if isinstance(value, Unavailable) else value


class ComputeCapability(_Frozen):
    """An NVIDIA compute capability; compares as a (major, minor) tuple, never as a float."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ComputeCapability:
        major, _, minor = text.strip().partition(".")
        return cls(major=int(major), minor=int(minor or 0))

    @property
    def as_tuple(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def __ge__(self, other: object) -> bool:
        return self.as_tuple >= _cc_tuple(other)

    def __lt__(self, other: object) -> bool:
        return self.as_tuple < _cc_tuple(other)

    def __le__(self, other: object) -> bool:
        return self.as_tuple <= _cc_tuple(other)

    def __gt__(self, other: object) -> bool:
        return self.as_tuple > _cc_tuple(other)


def _cc_tuple(other: object) -> tuple[int, int]:
    if isinstance(other, ComputeCapability):
        return other.as_tuple
    if isinstance(other, tuple) and len(other) == 2:
        return (int(other[0]), int(other[1]))
    raise TypeError(f"cannot compare a compute capability with {other!r}")


class DtypeSupport(_Frozen):
    """Native (hardware) support per dtype; emulated support does not count."""

    fp32: bool = True
    tf32: bool = False
    fp16: bool = False
    bf16: bool = False
    fp8: bool = False
    int8: bool = False
    source: str = ""


class GpuInfo(_Frozen):
    """One accelerator as NVML, ROCm or the shipped GPU table describes it."""

    index: int
    name: str
    vendor: Literal["nvidia", "amd"] = "nvidia"
    uuid: str | Unavailable | None = None
    compute_capability: ComputeCapability | Unavailable | None = None
    gfx_arch: str | None = None
    memory_total_bytes: int | Unavailable
    memory_free_bytes: int | Unavailable
    mig_mode: bool | Unavailable | None = None
    dtypes: DtypeSupport | Unavailable
    source: Literal["nvml", "torch", "gpu-table", "file"] = "nvml"

    @property
    def usable_memory_bytes(self) -> int | None:
        """Free memory when known, else total: what a plan may budget on this card."""
        free = known(self.memory_free_bytes)
        return free if free is not None else known(self.memory_total_bytes)


class SdpaBackend(_Frozen):
    """Whether one torch SDPA backend can run here, and why not."""

    usable: bool | Unavailable
    reason: str = ""


class TorchInfo(_Frozen):
    version: str
    cuda: str | None = None
    hip: str | None = None
    cudnn: str | None = None
    cuda_available: bool | Unavailable = False
    device_count: int | Unavailable = 0
    cxx11_abi: bool | None = None
    sdpa_backends: dict[str, SdpaBackend] = Field(default_factory=dict)
    flex_attention: bool | Unavailable = False
    assumed: bool = False


class LibraryInfo(_Frozen):
    """A distribution as installed: its version, and whether its import (and native code) really loads."""

    distribution: str
    import_name: str
    installed: bool
    version: str | None = None
    importable: bool | Unavailable | None = None
    error: str | None = None
    details: dict[str, str | list[str]] = Field(default_factory=dict)
    assumed: bool = False

    @property
    def usable(self) -> bool:
        """Installed, and not known to be broken on import."""
        return self.installed and self.importable is not False and self.error is None


class HostInfo(_Frozen):
    os: str
    python: str
    machine: str
    cpu: str | Unavailable
    cpu_count: int | Unavailable
    ram_total_bytes: int | Unavailable
    ram_available_bytes: int | Unavailable
    hostname: str | None = None  # names a snapshot's origin in reports (`snapshot FILE (created DATE on HOST)`)


class DriverInfo(_Frozen):
    driver_version: str | Unavailable | None = None
    cuda_driver_version: str | Unavailable | None = None
    nvml: str = ""


class Environment(_Frozen):
    """One machine, probed or described: the single input of every rule."""

    schema_version: int = SCHEMA_VERSION
    source: Literal["probe", "synthetic", "file"] = "probe"
    description: str = ""
    created_at: str = ""
    host: HostInfo
    gpus: tuple[GpuInfo, ...] | Unavailable = ()
    driver: DriverInfo = Field(default_factory=DriverInfo)
    torch: TorchInfo | Unavailable
    libraries: dict[str, LibraryInfo] = Field(default_factory=dict)

    @property
    def gpu_list(self) -> tuple[GpuInfo, ...]:
        return () if isinstance(self.gpus, Unavailable) else self.gpus

    def library(self, distribution: str) -> LibraryInfo:
        """The library by distribution name; a missing entry reads as not installed."""
        found = self.libraries.get(distribution)
        if found is not None:
            return found
        return LibraryInfo(distribution=distribution, import_name=distribution.replace("-", "_"), installed=False)

    def version_of(self, distribution: str) -> str | None:
        lib = self.library(distribution)
        return lib.version if lib.installed else None

