"""Do the installed kernels really run on this GPU? One tiny call each, in a child with a timeout.

An import proves little: a flash-attn wheel built without this GPU's architecture imports fine and fails on
the first call with "no kernel image is available for execution on the device"; a Triton too old for the
card compiles nothing. So each attention kernel (every SDPA backend, flex_attention, flash-attn 2/3/4, a
cached Hub kernel) runs one causal call per dtype the GPU supports and head_dim 64 and 128, and
bitsandbytes runs one int8 and one NF4 matmul. All run in one child first (one torch import); whatever that
child did not finish (a kernel failed, crashed or hung) runs again in a child of its own
(advisor/isolation.run_child), so a segfault or hang takes down only that kernel's entry. The results are
`Environment.kernel_runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.facts import DtypeSupport, KernelCase, KernelRun, LibraryInfo, Unavailable

__all__ = ["HEAD_DIMS", "KernelSpec", "kernel_specs", "not_run", "run_batch", "run_kernels"]

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

    def request(self, device: str, dtypes: Sequence[str], head_dims: Sequence[int] = HEAD_DIMS) -> dict[str, Any]:
        """The worker's JSON request (issue 29: doctor asks for the model's own head_dim)."""
        is_bnb = self.kind.startswith("bitsandbytes_")
        return {
            "kind": self.kind,
            "module": self.module,
            "function": self.function,
            "layout": self.layout,
            "kwargs": self.kwargs,
            "device": device,
            "dtypes": [d for d in dtypes if not (self.half_only and d == "float32")],
            "head_dims": [] if is_bnb else list(head_dims),
        }


def _cached_hub_kernels() -> list[str]:
    """The Hub kernels transformers would fall back to that are already in the local cache (no network): a repo
    with a downloaded snapshot in the hub cache's layout (`models--org--name/snapshots/<revision>/`), read
    directly: `scan_cache_dir` imports and checks the whole cache, a tenth of a second on every command."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        root = Path(HF_HUB_CACHE)
        return [repo for repo in HUB_KERNELS
                if any((root / f"models--{repo.replace('/', '--')}" / "snapshots").glob("*/*"))]
    except Exception:
        return []


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
    spec: KernelSpec, device: str, dtypes: Sequence[str], timeout: float, child: Callable[..., dict[str, Any]],
    head_dims: Sequence[int] = HEAD_DIMS,
) -> KernelRun:
    return _to_run(spec, device, child(WORKER, spec.request(device, dtypes, head_dims), timeout))


def run_batch(
    specs: Sequence[KernelSpec], *, device: str, dtypes: Sequence[str], timeout: float = 120.0,
    head_dims: Sequence[int] = HEAD_DIMS,
) -> dict[str, dict[str, Any]]:
    """All `specs` in one child, in order: the worker's result per kernel it finished (each with the child's
    `pid`), and for the kernel it was running when it crashed or hung, that crash or timeout as its result.
    Kernels after a failure get no entry: the caller runs them alone. A hang costs `timeout`, as alone."""
    import json
    import queue
    import threading

    from advisor.isolation import prestart
    from advisor.isolation.child import _last_line, _signal_text

    # the worker started on the CLI's first line, torch imported by now, or a fresh one (issue 27)
    proc = prestart.claim(prestart.KERNELS) or prestart.spawn_worker()
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[bytes] = []

    def read_out() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    def read_err() -> None:
        assert proc.stderr is not None
        errors.append(proc.stderr.read())

    readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for reader in readers:
        reader.start()
    results: dict[str, dict[str, Any]] = {}
    running: str | None = None
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"batch": [s.request(device, dtypes, head_dims) for s in specs]}).encode())
        proc.stdin.close()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                prestart.kill_group(proc, reap=False)
                if running is not None:
                    results[running] = {"ok": False, "error": f"timed out after {timeout:g} s"}
                break
            if line is None:  # the child is gone
                break
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a kernel's own print
            if not isinstance(message, dict):
                continue
            if "start" in message:
                running = str(message["start"])
            elif "kernel" in message and "ok" in message:
                results[str(message["kernel"])] = message
                running = None
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP (advisor/isolation/interrupts.py): the child's whole group goes with us
        prestart.kill_group(proc, reap=False)
        proc.wait()
        raise
    code = proc.wait()
    for reader in readers:
        reader.join(timeout=10)
    if running is not None and running not in results:  # it died inside this kernel
        last = _last_line(b"".join(errors))
        error = _signal_text(code) if code < 0 else f"exited with status {code} without a result"
        results[running] = {"ok": False, "error": f"{error}; last output: {last}" if last else error}
    return results


def _to_run(spec: KernelSpec, device: str, result: dict[str, Any]) -> KernelRun:
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
    head_dims: Sequence[int] = HEAD_DIMS,
) -> dict[str, KernelRun]:
    """All kernels in one child first (`run_batch`: one torch import and CUDA context instead of one per kernel,
    issue 14), then each kernel the batch did not finish in its own child, a few at a time; a crash or hang is
    that kernel's result. A given `child` (tests) runs every kernel alone through it."""
    import logging

    from advisor.probe.deferral import SLOW

    log = logging.getLogger("advisor")  # a progress line on a TTY (the CLI's progress_lines)
    log.info("proving %d kernel(s) on %s: %s", len(specs), device, ", ".join(s.kind for s in specs))
    done: dict[str, KernelRun] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # one bounded pool for every child
        if child is None:
            from advisor.isolation.child import run_child

            child = run_child
            # a kernel that compiles for seconds runs in its own child beside the batch of the quick ones
            slow = [s for s in specs if s.kind in SLOW] if len(specs) > 2 else []
            quick = [s for s in specs if s not in slow]
            alone = [pool.submit(_run_one, s, device, dtypes, timeout, child, head_dims) for s in slow]
            if len(quick) > 1:
                batch = run_batch(quick, device=device, dtypes=dtypes, timeout=timeout, head_dims=head_dims)
                done = {s.kind: _to_run(s, device, batch[s.kind]) for s in quick if s.kind in batch}
            for future in alone:
                run = future.result()
                done[run.kernel] = run
        rest = [s for s in specs if s.kind not in done]
        for run in pool.map(lambda s: _run_one(s, device, dtypes, timeout, child, head_dims), rest):
            done[run.kernel] = run
            log.info("kernel %s: %s (%d of %d)", run.kernel, "runs" if run.runs is True else "fails",
                     len(done), len(specs))
    return {s.kind: done[s.kind] for s in specs}
