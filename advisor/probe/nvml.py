"""The only importer of `pynvml` (from the official `nvidia-ml-py` distribution).

NVML reads GPU name, capability and memory without creating a CUDA context (which would cost
hundreds of MB per GPU and seconds of start-up). Each field is queried on its own, so a
`NotSupported` or a lost GPU degrades one field, not the report.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from advisor.facts import ComputeCapability, DriverInfo, GpuLink, Unavailable

__all__ = ["NvmlGpu", "NvmlResult", "gpu_local_cpus", "load_nvml", "probe_nvml"]

T = TypeVar("T")


@dataclass(frozen=True)
class NvmlGpu:
    index: int
    name: str | Unavailable
    uuid: str | Unavailable
    compute_capability: ComputeCapability | Unavailable
    memory_total_bytes: int | Unavailable
    memory_free_bytes: int | Unavailable
    mig_mode: bool | Unavailable


@dataclass(frozen=True)
class NvmlResult:
    gpus: tuple[NvmlGpu, ...] | Unavailable
    driver: DriverInfo
    links: tuple[GpuLink, ...] | None = None  # issue 30: per GPU pair (advisor/probe/links.py)


def load_nvml() -> Any:
    """Import pynvml, refusing the unofficial `pynvml` package that shadows the module name."""
    import pynvml  # type: ignore[import-untyped]

    if not hasattr(pynvml, "nvmlDeviceGetCudaComputeCapability"):
        raise ImportError("the `pynvml` module found is not nvidia-ml-py; run `pip install nvidia-ml-py`")
    return pynvml


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _error_reason(nvml: Any, exc: BaseException) -> str:
    not_supported = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", None)
    gpu_lost = getattr(nvml, "NVML_ERROR_GPU_IS_LOST", None)
    value = getattr(exc, "value", None)
    if value is not None and value == not_supported:
        return "NVML says this GPU does not support the query"
    if value is not None and value == gpu_lost:
        return "the GPU has fallen off the bus (NVML_ERROR_GPU_IS_LOST); check `nvidia-smi` and dmesg"
    return f"NVML error: {exc}"


def _query(nvml: Any, fn: Callable[[], T]) -> T | Unavailable:
    try:
        return fn()
    except Exception as exc:  # NVMLError subclasses are generated at runtime
        return Unavailable(reason=_error_reason(nvml, exc))


def _device(nvml: Any, index: int) -> NvmlGpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)

    def capability() -> ComputeCapability:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        return ComputeCapability(major=int(major), minor=int(minor))

    def memory() -> tuple[int, int]:
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return int(info.total), int(info.free)

    def mig() -> bool:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        return bool(current == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))

    mem = _query(nvml, memory)
    return NvmlGpu(
        index=index,
        name=_query(nvml, lambda: _text(nvml.nvmlDeviceGetName(handle))),
        uuid=_query(nvml, lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
        compute_capability=_query(nvml, capability),
        memory_total_bytes=mem if isinstance(mem, Unavailable) else mem[0],
        memory_free_bytes=mem if isinstance(mem, Unavailable) else mem[1],
        mig_mode=_query(nvml, mig),
    )


def _cuda_driver_version(nvml: Any) -> str:
    raw = int(nvml.nvmlSystemGetCudaDriverVersion())
    return f"{raw // 1000}.{(raw % 1000) // 10}"


def _no_nvml_library() -> str | None:
    """nvmlInit's own failure text where the driver's NVML library cannot be loaded on Linux (what nvidia-ml-py's
    `_LoadNvmlLibrary` tries first: `libnvidia-ml.so.1`), else None: then pynvml is imported and asked."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return "NVML Shared Library Not Found"
    return None


def probe_nvml(nvml: Any | None = None) -> NvmlResult:
    """Query every GPU NVML sees; `nvml` is injectable (a fake module in tests)."""
    if nvml is None:
        missing = _no_nvml_library()
        if missing is not None:  # no driver: say so without importing pynvml (issue 27: every command probes)
            reason = f"no NVIDIA driver found (nvmlInit failed: {missing})"
            return NvmlResult(gpus=Unavailable(reason=reason), driver=DriverInfo(nvml=reason))
        try:
            nvml = load_nvml()
        except ImportError as exc:
            reason = f"nvidia-ml-py is not installed or not official ({exc}); `pip install nvidia-ml-py`"
            return NvmlResult(gpus=Unavailable(reason=reason), driver=DriverInfo(nvml=reason))
    try:
        nvml.nvmlInit()
    except Exception as exc:
        reason = f"no NVIDIA driver found (nvmlInit failed: {exc})"
        return NvmlResult(gpus=Unavailable(reason=reason), driver=DriverInfo(nvml=reason))
    try:
        driver = DriverInfo(
            driver_version=_query(nvml, lambda: _text(nvml.nvmlSystemGetDriverVersion())),
            cuda_driver_version=_query(nvml, lambda: _cuda_driver_version(nvml)),
            nvml="ok",
        )
        count = _query(nvml, lambda: int(nvml.nvmlDeviceGetCount()))
        if isinstance(count, Unavailable):
            return NvmlResult(gpus=count, driver=driver)
        gpus: list[NvmlGpu] = []
        for index in range(count):
            try:
                gpus.append(_device(nvml, index))
            except Exception as exc:  # the handle itself failed: keep the slot, say why
                lost = Unavailable(reason=_error_reason(nvml, exc))
                gpus.append(NvmlGpu(index, lost, lost, lost, lost, lost, lost))
        from advisor.probe.links import probe_links

        return NvmlResult(gpus=tuple(gpus), driver=driver, links=probe_links(nvml, count) if count > 1 else None)
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def gpu_local_cpus(index: int = 0) -> list[int] | None:
    """The CPUs NVML reports as closest to GPU `index` (its NUMA node), within this process's allowed set.

    benchmarks/noise_probe.py pins workers there to test whether CPU placement explains run-to-run noise.
    """
    try:
        nvml = load_nvml()
        nvml.nvmlInit()
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            mask = nvml.nvmlDeviceGetCpuAffinity(handle, ((os.cpu_count() or 64) + 63) // 64)
        finally:
            nvml.nvmlShutdown()
    except Exception:  # no driver, no GPU, an old NVML: run unpinned
        return None
    allowed = os.sched_getaffinity(0)
    cpus = [64 * i + bit for i, word in enumerate(mask) for bit in range(64) if int(word) >> bit & 1]
    return [c for c in cpus if c in allowed] or None
