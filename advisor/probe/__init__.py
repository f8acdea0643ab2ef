"""Probe this machine into an `Environment`: the only code that touches hardware and imports."""

from __future__ import annotations

import datetime as _dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from advisor.facts import (
    ComputeCapability,
    Environment,
    GpuInfo,
    KernelRun,
    LibraryInfo,
    TorchInfo,
    Unavailable,
    known,
)
from advisor.knowledge import Knowledge, load_knowledge
from advisor.probe.host import probe_host
from advisor.probe.kernels import device_dtypes, kernel_specs, not_run, run_kernels
from advisor.probe.nvml import NvmlGpu, probe_nvml
from advisor.probe.packages import probe_libraries
from advisor.probe.torch_info import probe_torch

__all__ = ["collect_environment"]


def _gpu_from_nvml(gpu: NvmlGpu, knowledge: Knowledge) -> GpuInfo:
    cc = gpu.compute_capability
    return GpuInfo(
        index=gpu.index,
        name=known(gpu.name) or f"GPU {gpu.index} ({gpu.name})",
        vendor="nvidia",
        uuid=gpu.uuid,
        compute_capability=cc,
        memory_total_bytes=gpu.memory_total_bytes,
        memory_free_bytes=gpu.memory_free_bytes,
        mig_mode=gpu.mig_mode,
        dtypes=cc if isinstance(cc, Unavailable) else knowledge.dtype_support(cc),
        source="nvml",
    )


def _gpus_from_torch(knowledge: Knowledge) -> tuple[GpuInfo, ...] | Unavailable:
    """ROCm, or NVIDIA without NVML: ask torch (this creates a device context, hence the last resort)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return Unavailable(reason="no GPU: NVML found no NVIDIA driver and torch sees no CUDA/ROCm device")
        gpus = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gfx = getattr(props, "gcnArchName", None) if torch.version.hip else None
            gfx = gfx.split(":")[0] if gfx else None
            cc = None if gfx else ComputeCapability(major=props.major, minor=props.minor)
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=props.name,
                    vendor="amd" if gfx else "nvidia",
                    compute_capability=cc,
                    gfx_arch=gfx,
                    memory_total_bytes=int(total),
                    memory_free_bytes=int(free),
                    dtypes=knowledge.dtype_support(cc, gfx),
                    source="torch",
                )
            )
        return tuple(gpus)
    except ImportError:
        return Unavailable(reason="no NVIDIA driver found through NVML, and torch is not installed to look further")
    except Exception as exc:
        return Unavailable(reason=f"torch could not list GPUs: {type(exc).__name__}: {exc}")


def probe_kernel_runs(
    gpus: tuple[GpuInfo, ...] | Unavailable,
    torch_info: TorchInfo | Unavailable,
    libraries: dict[str, LibraryInfo],
    *,
    enabled: bool = True,
) -> dict[str, KernelRun]:
    """Run each installed kernel once on GPU 0, or say for every one of them why nothing ran."""
    specs = kernel_specs(libraries)
    if not enabled:
        return not_run(specs, "kernel runs skipped (--no-kernel-runs)")
    if isinstance(torch_info, Unavailable):
        return not_run(specs, f"nothing was run: torch is unavailable ({torch_info.reason})")
    if torch_info.cuda_available is not True or isinstance(gpus, Unavailable) or not gpus:
        why = gpus.reason if isinstance(gpus, Unavailable) else "torch.cuda.is_available() is False"
        return not_run(specs, f"nothing was run: no GPU for torch {torch_info.version} ({why})")
    return run_kernels(specs, device="cuda:0", dtypes=device_dtypes(gpus[0].dtypes))


def collect_environment(
    *,
    nvml: Any | None = None,
    import_checks: bool = True,
    knowledge: Knowledge | None = None,
    kernel_runs: bool = True,
) -> Environment:
    """Probe host, GPUs, torch and libraries. Never raises for a missing or broken component."""
    knowledge = knowledge or load_knowledge()
    # the import checks are child processes: start them first so they overlap our own torch import
    pool = ThreadPoolExecutor(max_workers=1)
    libraries = pool.submit(probe_libraries, import_checks=import_checks)
    nv = probe_nvml(nvml)
    gpus: tuple[GpuInfo, ...] | Unavailable
    if isinstance(nv.gpus, Unavailable):
        gpus = _gpus_from_torch(knowledge) if nvml is None else nv.gpus
        if isinstance(gpus, Unavailable) and nvml is None:
            gpus = Unavailable(reason=f"{nv.gpus.reason}; {gpus.reason}")
    else:
        gpus = tuple(_gpu_from_nvml(g, knowledge) for g in nv.gpus)
    capabilities = [cc for g in (() if isinstance(gpus, Unavailable) else gpus) if (cc := known(g.compute_capability))]
    torch_info = probe_torch(capabilities)
    pool.shutdown(wait=True)
    libs = libraries.result()
    return Environment(
        source="probe",
        description="probed on this machine",
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=probe_host(),
        gpus=gpus,
        driver=nv.driver,
        torch=torch_info,
        libraries=libs,
        kernel_runs=probe_kernel_runs(gpus, torch_info, libs, enabled=kernel_runs and import_checks),
    )
