"""Probe this machine into an `Environment`: the only code that touches hardware and imports. `target` turns
the command line's target (this machine, a saved snapshot, or a named GPU) into one, and `snapshot_schema`
checks a saved snapshot before it is trusted.

May import: the vocabulary modules, `advisor.io`, `advisor.isolation` and `advisor.knowledge` (the tables that
interpret a capability); never the model, the rules or anything above them.
"""

from __future__ import annotations

import datetime as _dt
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from advisor import env as envvars
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
from advisor.io import analysis_cache
from advisor.isolation import prestart
from advisor.knowledge import Knowledge, load_knowledge
from advisor.probe.deferral import DEFERRED, deferred
from advisor.probe.host import probe_host
from advisor.probe.hub_access import probe_hub_access
from advisor.probe.kernel_worker import torch_facts
from advisor.probe.kernels import device_dtypes, kernel_specs, not_run, run_kernels
from advisor.probe.nvml import NvmlGpu, NvmlResult, probe_nvml
from advisor.probe.packages import probe_libraries
from advisor.probe.torch_info import prestarted_facts, probe_torch
from advisor.probe.torch_static import (
    TorchBuild,
    read_torch_build,
    static_torch_info,
    torch_package_dir,
    visible_device_count,
)

__all__ = ["collect_environment"]

_NO_GPU = "no GPU: NVML found no NVIDIA driver and torch sees no CUDA/ROCm device"


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
            return Unavailable(reason=_NO_GPU)
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


def _static_torch(nv: NvmlResult, nvml: Any | None) -> tuple[TorchBuild, int] | None:
    """torch's build and visible GPU count without importing torch, where the files and NVML suffice:
    a CPU build, or a CUDA build whose GPUs NVML lists. ROCm, or CUDA without NVML, needs torch itself."""
    build = read_torch_build()
    if isinstance(build, Unavailable) or build.hip is not None:
        return None
    if build.cuda is None:
        return build, 0
    if isinstance(nv.gpus, Unavailable):
        return None
    return build, visible_device_count(len(nv.gpus), None if nvml is None else {})


def _torch_install_stamp() -> dict[str, Any] | None:
    """What identifies this torch install: its version file's text and the times its files were written."""
    build = read_torch_build()
    folder = torch_package_dir()
    if isinstance(build, Unavailable) or folder is None:
        return None
    try:
        marks = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in (folder / "version.py", folder / "__init__.py", folder / "lib")]
    except OSError:
        return None
    return {"build": [build.version, build.cuda, build.hip, build.cudnn], "files": marks, "path": str(folder)}


def _live_torch(capabilities: list[ComputeCapability], nv: NvmlResult, *, cache: bool) -> TorchInfo | Unavailable:
    """`probe_torch` (imports torch, seconds), remembered in the analysis cache for this torch install, driver,
    GPU set and CUDA_VISIBLE_DEVICES: a second `doctor` need not import torch (issue 14). Failures are not kept."""
    stamp = _torch_install_stamp() if cache else None
    if stamp is None:
        return probe_torch(capabilities, facts=prestarted_facts())
    gpus = [] if isinstance(nv.gpus, Unavailable) else [[str(g.uuid), str(g.compute_capability)] for g in nv.gpus]
    key = {"torch": stamp, "capabilities": [str(cc) for cc in capabilities], "gpus": gpus,
           "driver": nv.driver.model_dump(mode="json"), "visible": envvars.read(envvars.CUDA_VISIBLE_DEVICES)}
    extra = analysis_cache.source_stamp(probe_torch) + analysis_cache.source_stamp(torch_facts)
    hit = analysis_cache.get("torch-probe", key, transformers=None, extra=extra, use=cache)
    if isinstance(hit, dict):
        try:
            info = TorchInfo.model_validate(hit)
            prestart.discard(prestart.TORCH)  # the worker started for this answer is not needed
            return info
        except ValueError:
            pass
    info = probe_torch(capabilities, facts=prestarted_facts())
    healthy = isinstance(info, TorchInfo) and not isinstance(info.cuda_available, Unavailable) and not isinstance(
        info.flex_attention, Unavailable)
    if healthy and isinstance(info, TorchInfo):
        analysis_cache.put("torch-probe", key, info.model_dump(mode="json"), transformers=None, extra=extra, use=cache)
    return info


def _cached_kernel_runs(specs: list[Any], nv: NvmlResult, dtypes: list[str], device: str = "cuda:0", *,
                        cache: bool = True) -> dict[str, KernelRun]:
    """`run_kernels` on GPU 0, remembered in the analysis cache for this torch install, driver, GPU set,
    CUDA_VISIBLE_DEVICES and these exact kernel requests (their packages' versions included): a second
    `doctor` on an unchanged install need not start a child (issue 14). Only a result where every kernel ran
    is kept, so a failure (perhaps transient: another process filled the GPU) is tried again next time."""
    stamp = _torch_install_stamp()
    if stamp is None or isinstance(nv.gpus, Unavailable):
        return run_kernels(specs, device=device, dtypes=dtypes)
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    packages = {d: version(d) for d in ("flash-attn", "flash-attn-3", "flash-attn-4", "kernels", "bitsandbytes", "triton")}
    key = {"torch": stamp, "gpus": [[str(g.uuid), str(g.compute_capability)] for g in nv.gpus],
           "driver": nv.driver.model_dump(mode="json"), "visible": envvars.read(envvars.CUDA_VISIBLE_DEVICES),
           "requests": [s.request(device, dtypes) for s in specs], "packages": packages}
    from advisor.probe import kernel_worker

    extra = analysis_cache.source_stamp(run_kernels) + analysis_cache.source_stamp(kernel_worker.run)
    hit = analysis_cache.get("kernel-runs", key, transformers=None, extra=extra, use=cache)
    if isinstance(hit, dict):
        try:
            runs = {kind: KernelRun.model_validate(run) for kind, run in hit.items()}
            prestart.discard(prestart.KERNELS)
            return runs
        except ValueError:
            pass
    runs = run_kernels(specs, device=device, dtypes=dtypes)
    if runs and all(run.runs is True for run in runs.values()):
        analysis_cache.put("kernel-runs", key, {k: r.model_dump(mode="json") for k, r in runs.items()},
                           transformers=None, extra=extra, use=cache)
    return runs


def probe_kernel_runs(
    gpus: tuple[GpuInfo, ...] | Unavailable,
    torch_info: TorchInfo | Unavailable,
    libraries: dict[str, LibraryInfo],
    *,
    enabled: bool = True,
    early: Future[dict[str, KernelRun]] | None = None,
) -> dict[str, KernelRun]:
    """Run each installed kernel once on GPU 0, or say for every one of them why nothing ran. `early`: runs
    started before torch was probed, used only where the probe confirms the GPU (missing kernels run now)."""
    specs, later = deferred(kernel_specs(libraries))  # issue 27: a long compile waits until it matters
    if not enabled:
        return not_run([*specs, *later], "kernel runs skipped (--no-kernel-runs)")
    if isinstance(torch_info, Unavailable):
        return not_run([*specs, *later], f"nothing was run: torch is unavailable ({torch_info.reason})")
    if torch_info.cuda_available is not True or isinstance(gpus, Unavailable) or not gpus:
        # the GPUs entry says why there is none: not repeated here in nested parentheses (issue 31)
        why = "" if isinstance(gpus, Unavailable) else " (torch.cuda.is_available() is False)"
        return not_run([*specs, *later], f"nothing was run: no GPU for torch {torch_info.version}{why}")
    started = early.result() if early is not None else {}
    missing = [s for s in specs if s.kind not in started]
    ran = run_kernels(missing, device="cuda:0", dtypes=device_dtypes(gpus[0].dtypes)) if missing else {}
    return {**{s.kind: started[s.kind] if s.kind in started else ran[s.kind] for s in specs}, **not_run(later, DEFERRED)}


def collect_environment(
    *, nvml: Any | None = None, import_checks: bool = True, knowledge: Knowledge | None = None,
    import_torch: bool = True, kernel_runs: bool = True, cache: bool = True,
) -> Environment:
    """Probe host, GPUs, torch and libraries. Never raises for a missing or broken component.

    `import_torch=False` (recommend, check) reads torch's build from its files instead of importing it,
    where that is enough to know the answer (see `probe.torch_static`). `cache=False` (--no-cache): no step reads
    or writes the analysis cache; the decision is made here, once, and handed to the pool threads."""
    cache = cache and analysis_cache.enabled()
    knowledge = knowledge or load_knowledge(cache=cache)
    # the import checks are child processes: start them first so they overlap our own torch import
    pool = ThreadPoolExecutor(max_workers=1)
    pool_kernels = ThreadPoolExecutor(max_workers=1)
    libraries = pool.submit(probe_libraries, import_checks=import_checks, cache=cache)
    nv = probe_nvml(nvml)
    static = None if import_torch else _static_torch(nv, nvml)
    gpus: tuple[GpuInfo, ...] | Unavailable
    build = read_torch_build()
    cpu_build = isinstance(build, TorchBuild) and build.cuda is None and build.hip is None
    if isinstance(nv.gpus, Unavailable) and (static is not None or cpu_build):  # a CPU build sees no GPU either
        gpus = nv.gpus if nvml is not None else Unavailable(reason=f"{nv.gpus.reason}; {_NO_GPU}")
    elif isinstance(nv.gpus, Unavailable):
        gpus = _gpus_from_torch(knowledge) if nvml is None else nv.gpus
        if isinstance(gpus, Unavailable) and nvml is None:
            gpus = Unavailable(reason=f"{nv.gpus.reason}; {gpus.reason}")
    else:
        gpus = tuple(_gpu_from_nvml(g, knowledge) for g in nv.gpus)
    capabilities = [cc for g in (() if isinstance(gpus, Unavailable) else gpus) if (cc := known(g.compute_capability))]
    early = None
    if kernel_runs and import_checks and import_torch and nvml is None and isinstance(gpus, tuple) and gpus and (
            isinstance(build, TorchBuild) and build.cuda is not None):
        # NVML lists GPUs and torch is a CUDA build: start the kernel child now, beside our own torch import
        # (issue 14); it is used only if that import confirms CUDA works. The specs need only package metadata.
        early = pool_kernels.submit(_cached_kernel_runs, deferred(kernel_specs(probe_libraries(import_checks=False)))[0],
                                    nv, device_dtypes(gpus[0].dtypes), cache=cache)
    if early is None:
        prestart.discard(prestart.KERNELS)  # no kernel runs now: the worker started for them is not needed
    if static is not None:
        driver_cuda = nv.driver.cuda_driver_version if isinstance(nv.driver.cuda_driver_version, str) else None
        torch_info: TorchInfo | Unavailable = static_torch_info(static[0], capabilities, static[1], driver_cuda)
    else:
        torch_info = _live_torch(capabilities, nv, cache=cache and nvml is None)
    pool.shutdown(wait=True)
    libs = libraries.result()
    enabled = kernel_runs and import_checks and import_torch
    runs = probe_kernel_runs(gpus, torch_info, libs, enabled=enabled, early=early)
    pool_kernels.shutdown(wait=True)
    return Environment(
        source="probe",
        description="probed on this machine",
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=probe_host(),
        gpus=gpus,
        driver=nv.driver,
        torch=torch_info,
        libraries=libs,
        kernel_runs=runs,
        hub=probe_hub_access(),
        links=nv.links if isinstance(gpus, tuple) and len(gpus) > 1 else None,  # issue 30
    )
