"""Do the installed kernels really run on this GPU? One tiny call each, in a child with a timeout.

An import proves little: a flash-attn wheel built without this GPU's architecture imports fine and fails on
the first call with "no kernel image is available for execution on the device"; a Triton too old for the
card compiles nothing. So each attention kernel (every SDPA backend, flex_attention, flash-attn 2/3/4, a
cached Hub kernel) runs one causal call per dtype the GPU supports and head_dim 64 and 128, and
bitsandbytes runs one int8 and one NF4 matmul. One child per kernel (advisor/isolation.run_child), so a
segfault or hang takes down only that kernel's entry. The results are `Environment.kernel_runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from advisor.facts import DtypeSupport, KernelCase, KernelRun, LibraryInfo, Unavailable

__all__ = ["HEAD_DIMS", "KernelSpec", "kernel_specs", "not_run", "run_kernels"]

HEAD_DIMS = (64, 128)
WORKER = "advisor.probe.kernel_worker"
_SDPA = ("sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sdpa_math")
# Hub kernels transformers falls back to (FLASH_ATTN_KERNEL_FALLBACK in modeling_flash_attention_utils.py, 5.24:
# FA2, FA3, FA4 on CUDA; aiter on ROCm); only one already in the local Hub cache is run.
HUB_KERNELS = (
    "kernels-community/flash-attn2",
    "kernels-community/vllm-flash-attn3",
    "kernels-community/flash-attn4",
    "kernels-community/aiter-flash-attn",
)


@dataclass(frozen=True)
class KernelSpec:
    """One kernel to run: `kind` picks the worker's call; module/function name a Python-level kernel."""

    kind: str
    module: str | None = None
    function: str | None = None
    layout: str = "bhsd"  # torch SDPA takes (batch, heads, seq, dim); flash-attn takes (batch, seq, heads, dim)
    half_only: bool = False  # flash-attn kernels have no fp32 path
    kwargs: dict[str, Any] = field(default_factory=dict)

    def request(self, device: str, dtypes: Sequence[str]) -> dict[str, Any]:
        """The worker's JSON request."""
        is_bnb = self.kind.startswith("bitsandbytes_")
        return {
            "kind": self.kind,
            "module": self.module,
            "function": self.function,
            "layout": self.layout,
            "kwargs": self.kwargs,
            "device": device,
            "dtypes": [d for d in dtypes if not (self.half_only and d == "float32")],
            "head_dims": [] if is_bnb else list(HEAD_DIMS),
        }


def _cached_hub_kernels() -> list[str]:
    """The Hub kernels transformers would fall back to that are already in the local cache (no network)."""
    try:
        from huggingface_hub import scan_cache_dir

        cached = {repo.repo_id for repo in scan_cache_dir().repos}
    except Exception:
        return []
    return [repo for repo in HUB_KERNELS if repo in cached]


def kernel_specs(libraries: dict[str, LibraryInfo], hub_kernels: Sequence[str] | None = None) -> list[KernelSpec]:
    """The kernels installed here: SDPA and flex always (torch), the rest when their package is installed."""
    # torch's flash and cuDNN SDPA kernels take only fp16/bf16 (sdp_utils.cpp, check_tensor_dtype): an fp32 call
    # there is "No available kernel" by design, not a broken kernel (seen on the H100)
    specs = [KernelSpec(kind, half_only=kind in ("sdpa_flash", "sdpa_cudnn")) for kind in _SDPA]
    specs.append(KernelSpec("flex_attention"))
    flash = {"causal": True}
    if libraries.get("flash-attn") and libraries["flash-attn"].installed:
        specs.append(KernelSpec("flash_attention_2", "flash_attn", "flash_attn_func", "bshd", True, flash))
    if libraries.get("flash-attn-3") and libraries["flash-attn-3"].installed:
        specs.append(KernelSpec("flash_attention_3", "flash_attn_interface", "flash_attn_func", "bshd", True, flash))
    if libraries.get("flash-attn-4") and libraries["flash-attn-4"].installed:
        specs.append(KernelSpec("flash_attention_4", "flash_attn.cute", "flash_attn_func", "bshd", True, flash))
    if libraries.get("kernels") and libraries["kernels"].installed:
        repos = _cached_hub_kernels() if hub_kernels is None else hub_kernels
        specs.extend(KernelSpec(f"hub:{repo}", layout="bshd", half_only=True) for repo in repos)
    if libraries.get("bitsandbytes") and libraries["bitsandbytes"].installed:
        specs += [KernelSpec("bitsandbytes_int8", half_only=True), KernelSpec("bitsandbytes_nf4", half_only=True)]
    return specs


def device_dtypes(dtypes: DtypeSupport | Unavailable | None) -> list[str]:
    """The torch dtypes to try: float32 always, float16 and bfloat16 where the GPU supports them natively."""
    names = ["float32"]
    if isinstance(dtypes, DtypeSupport):
        names += [name for name, ok in (("float16", dtypes.fp16), ("bfloat16", dtypes.bf16)) if ok]
    else:
        names.append("float16")
    return names


def not_run(specs: Sequence[KernelSpec], reason: str) -> dict[str, KernelRun]:
    """Every kernel as not run, with why: the CPU path and the skip flag."""
    return {s.kind: KernelRun(kernel=s.kind, runs=Unavailable(reason=reason)) for s in specs}


def _run_one(
    spec: KernelSpec, device: str, dtypes: Sequence[str], timeout: float, child: Callable[..., dict[str, Any]]
) -> KernelRun:
    result = child(WORKER, spec.request(device, dtypes), timeout)
    cases = tuple(
        KernelCase(dtype=c["dtype"], head_dim=c.get("head_dim"), runs=bool(c["runs"]), error=c.get("error"))
        for c in result.get("cases") or ()
    )
    error = result.get("error")
    if error and "no kernel image is available" in error:
        error = f"{error} (this build has no kernel compiled for this GPU's architecture)"
    return KernelRun(kernel=spec.kind, runs=bool(result.get("ok")), error=error, device=device, cases=cases)


def run_kernels(
    specs: Sequence[KernelSpec],
    *,
    device: str,
    dtypes: Sequence[str],
    timeout: float = 120.0,
    child: Callable[..., dict[str, Any]] | None = None,
    workers: int = 4,
) -> dict[str, KernelRun]:
    """Run each spec in its own child on `device`, a few at a time; a crash or hang is that kernel's result."""
    if child is None:
        from advisor.isolation import run_child

        child = run_child
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(specs)))) as pool:
        runs = list(pool.map(lambda s: _run_one(s, device, dtypes, timeout, child), specs))
    return {run.kernel: run for run in runs}
