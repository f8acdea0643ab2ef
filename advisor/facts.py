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
    "ComputeCapability",
    "DtypeSupport",
    "Environment",
    "GpuInfo",
    "GpuLink",
    "HostInfo",
    "HubAccess",
    "KernelCase",
    "KernelRun",
    "LibraryInfo",
    "SdpaBackend",
    "TorchInfo",
    "Unavailable",
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


class GpuLink(_Frozen):
    """How two GPUs talk (issue 30): NVLink links up between them, else the PCIe topology level of their nearest
    common ancestor (NVML `nvmlDeviceGetTopologyCommonAncestor`: internal, single, multiple, hostbridge, node,
    system), or the GPU table's default for a described target."""

    a: int = Field(ge=0, le=1024)
    b: int = Field(ge=0, le=1024)
    kind: Literal["nvlink", "pcie", "unknown"]
    nvlink_links: int = Field(0, ge=0, le=1024)
    pcie_level: str | None = None
    source: Literal["nvml", "gpu-table", "file"] = "nvml"


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


class KernelCase(_Frozen):
    """One tiny call of a kernel on the real device: its dtype, head_dim, and whether it ran."""

    dtype: str
    head_dim: int | None = None
    runs: bool
    error: str | None = None


class KernelRun(_Frozen):
    """Whether a kernel really runs here, beyond importing: a tiny call per dtype and head_dim, in a child.

    `runs` is True when every case ran, False when one failed (a wheel without a kernel image for this GPU,
    a crash or hang on first use), Unavailable when nothing was run, with the reason (no GPU, skipped).
    """

    kernel: str
    runs: bool | Unavailable
    error: str | None = None
    device: str | None = None
    cases: tuple[KernelCase, ...] = ()


class HubAccess(_Frozen):
    """How a load on this machine would reach the Hugging Face Hub: the environment variables that decide it, and
    whether the Hub answered (checked only when the user allowed the network: `--allow-download`).

    Read by the Hub-kernel rules (KERN001-KERN003): offline, `kernels` resolves `version=N` only from the cache;
    online, it first asks the Hub whether the kernel's publisher is trusted.
    """

    offline: bool = False  # huggingface_hub's HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE when HF_HUB_OFFLINE is unset)
    offline_source: str = ""  # the variable and value that decided it, e.g. "HF_HUB_OFFLINE=1"
    use_hub_kernels: str | None = None  # USE_HUB_KERNELS as set (None: unset, transformers' default "YES")
    kernels_cache: str | None = None  # KERNELS_CACHE as set
    endpoint: str = "https://huggingface.co"
    reachable: bool | Unavailable = Field(default_factory=lambda: Unavailable(
        reason="not checked (the advisor makes no network call without --allow-download)"))


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
    kernel_runs: dict[str, KernelRun] = Field(default_factory=dict)
    hub: HubAccess | None = None  # None: not recorded (a snapshot from before issue 24)
    links: tuple[GpuLink, ...] | None = None  # issue 30: per GPU pair; None: not recorded (older snapshots)

    @property
    def gpu_list(self) -> tuple[GpuInfo, ...]:
        return () if isinstance(self.gpus, Unavailable) else self.gpus

    def library(self, distribution: str) -> LibraryInfo:
        """The library by distribution name; a missing entry reads as not installed."""
        found = self.libraries.get(distribution)
        if found is not None:
            return found
        return LibraryInfo(distribution=distribution, import_name=distribution.replace("-", "_"), installed=False)

    def kernel_runs_ok(self, kernel: str) -> bool | None:
        """True/False when the kernel was run here, None when that is unknown (not run, no entry)."""
        found = self.kernel_runs.get(kernel)
        return None if found is None or isinstance(found.runs, Unavailable) else found.runs

    def kernel_failure(self, kernel: str, dtype: str | None = None) -> str | None:
        """Why `kernel` failed its tiny run here (for `dtype` when that case was run), or None if it ran or was
        never run: rules prefer this over `importable`, which a wheel without this GPU's kernels passes."""
        found = self.kernel_runs.get(kernel)
        if found is None or found.runs is not False:
            return None
        cases = [case for case in found.cases if dtype is None or case.dtype == dtype]
        if found.cases and dtype is not None and all(case.runs for case in cases):
            return None  # it failed in another dtype only
        failed = next((case for case in cases if not case.runs), None)
        where = f" ({failed.dtype}, head_dim {failed.head_dim})" if failed and failed.head_dim else (
            f" ({failed.dtype})" if failed else "")
        return f"{(failed.error if failed else None) or found.error or 'failed'}{where}"

    def version_of(self, distribution: str) -> str | None:
        lib = self.library(distribution)
        return lib.version if lib.installed else None

