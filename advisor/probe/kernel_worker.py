"""Child process: run one kernel's tiny calls on the device and print one JSON line.

Started by advisor/probe/kernels.py: first all kernels in one child (`{"batch": [...]}`, one torch import and
CUDA context for all, issue 14), then, through advisor/isolation.run_child, one child per kernel for whatever
the batch did not finish, so a kernel that segfaults, hangs or poisons the CUDA context takes only its own
entry down. The request names the kernel
`kind` and, for a Python-level kernel (flash-attn, a Hub kernel, a test's fake), the module and function.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["main", "torch_facts"]

_BATCH, _HEADS, _SEQ = 1, 2, 128  # one 128-token block: flex_attention's default block size


def _qkv(torch: Any, device: str, dtype: Any, head_dim: int, layout: str) -> tuple[Any, Any, Any]:
    shape = (_BATCH, _HEADS, _SEQ, head_dim) if layout == "bhsd" else (_BATCH, _SEQ, _HEADS, head_dim)
    return tuple(torch.randn(shape, device=device, dtype=dtype) for _ in range(3))


def _sdpa_call(torch: Any, backend: str) -> Callable[[Any, Any, Any], Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = {
        "sdpa_flash": SDPBackend.FLASH_ATTENTION,
        "sdpa_efficient": SDPBackend.EFFICIENT_ATTENTION,
        "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
        "sdpa_math": SDPBackend.MATH,
    }[backend]

    def call(q: Any, k: Any, v: Any) -> Any:
        with sdpa_kernel([chosen]):  # only this backend: an unusable one raises instead of falling back
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    return call


def _flex_call(torch: Any) -> Callable[[Any, Any, Any], Any]:
    from torch.nn.attention.flex_attention import flex_attention

    compiled = torch.compile(flex_attention)  # transformers compiles it too: Triton is what fails on old GPUs
    return lambda q, k, v: compiled(q, k, v)


def _function(module: str, function: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module)
    for part in function.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _hub_call(repo: str) -> Callable[[Any, Any, Any], Any]:
    from kernels import get_kernel  # offline: HF_HUB_OFFLINE=1, so only a cached kernel loads

    kernel = get_kernel(repo)
    fn = getattr(kernel, "flash_attn_func", None) or kernel.fwd
    return lambda q, k, v: fn(q, k, v, causal=True)


def _bnb_case(torch: Any, device: str, dtype: Any, kind: str) -> None:
    import bitsandbytes as bnb

    x = torch.randn(4, 64, device=device, dtype=dtype)
    if kind == "bitsandbytes_int8":
        layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False, threshold=6.0)
    else:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=dtype, quant_type="nf4")
    layer = layer.to(device)  # quantizes the weight on the device
    out = layer(x)
    if not bool(torch.isfinite(out.float()).all()):
        raise RuntimeError("the matmul ran but returned non-finite values")


def _attention_call(torch: Any, request: dict[str, Any]) -> Callable[[Any, Any, Any], Any]:
    kind = request["kind"]
    if kind.startswith("sdpa_"):
        return _sdpa_call(torch, kind)
    if kind == "flex_attention":
        return _flex_call(torch)
    if kind.startswith("hub:"):
        return _hub_call(kind.removeprefix("hub:"))
    fn = _function(request["module"], request["function"])
    kwargs = dict(request.get("kwargs") or {})
    return lambda q, k, v: fn(q, k, v, **kwargs)


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    line = " ".join(part.strip() for part in text[:3])
    return line if len(line) <= 400 else line[:397] + "..."


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Every (dtype, head_dim) case of one kernel; each failure is recorded, the next case still runs."""
    import torch

    device = request["device"]
    kind = request["kind"]
    cases: list[dict[str, Any]] = []
    try:
        call = None if kind.startswith("bitsandbytes_") else _attention_call(torch, request)
    except Exception as exc:  # an import or Hub-load failure: nothing can run
        return {"ok": False, "error": _error(exc), "cases": []}
    for dtype_name in request["dtypes"]:
        dtype = getattr(torch, dtype_name)
        for head_dim in request.get("head_dims") or [None]:
            case: dict[str, Any] = {"dtype": dtype_name, "head_dim": head_dim}
            try:
                if call is None:
                    _bnb_case(torch, device, dtype, kind)
                else:
                    out = call(*_qkv(torch, device, dtype, int(head_dim), request.get("layout", "bhsd")))
                    out = out[0] if isinstance(out, tuple) else out
                    if not bool(torch.isfinite(out.float()).all()):
                        raise RuntimeError("the kernel ran but returned non-finite values")
                if device.startswith("cuda"):
                    torch.cuda.synchronize()  # an asynchronous launch failure surfaces here
                case["runs"] = True
            except Exception as exc:
                case["runs"], case["error"] = False, _error(exc)
            cases.append(case)
    failed = [c for c in cases if not c["runs"]]
    return {"ok": not failed, "error": failed[0]["error"] if failed else None, "cases": cases}


def run_batch(requests: list[dict[str, Any]]) -> None:
    """Several kernels in this one process (one torch import, one CUDA context), one JSON line each as it
    finishes, after a `{"start": kind}` line, so the parent knows which kernel a crash or hang took down.
    Stops after the first kernel that fails: a failed call can leave the CUDA context unusable, and the
    parent runs the remaining kernels in children of their own."""
    import os

    for request in requests:
        _emit({"start": request["kind"]})
        result = run(request)
        _emit({**result, "kernel": request["kind"], "pid": os.getpid()})
        if not result["ok"]:
            return


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def cudnn_version(torch: Any) -> str | None:
    raw = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if not raw:
        return None
    raw = int(raw)
    if raw >= 90000:  # cuDNN 9 encodes major*10000 + minor*100 + patch
        return f"{raw // 10000}.{(raw % 10000) // 100}.{raw % 100}"
    return f"{raw // 1000}.{(raw % 1000) // 100}.{raw % 100}"


def torch_facts() -> dict[str, Any]:
    """What advisor.probe.torch_info reads from the installed torch, as JSON: the one `import torch` of a first
    `doctor` happens here, in a worker started before the CLI loads (advisor/isolation/prestart.py, issue 27)."""
    try:
        import torch
    except ImportError:
        return {"unavailable": "torch is not installed: `pip install torch`"}
    except Exception as exc:  # a broken torch install must not end the report
        return {"unavailable": f"`import torch` failed: {type(exc).__name__}: {exc}"}
    facts: dict[str, Any] = {"version": torch.__version__.split("+")[0], "cuda": torch.version.cuda,
                             "hip": getattr(torch.version, "hip", None), "cudnn": None}
    if facts["cuda"]:
        try:
            facts["cudnn"] = cudnn_version(torch)
        except Exception:
            pass
    try:
        facts["cuda_available"] = bool(torch.cuda.is_available())
        facts["device_count"] = int(torch.cuda.device_count()) if facts["cuda_available"] else 0
    except Exception as exc:
        facts["cuda_failed"] = f"torch.cuda failed: {exc}"
    backends = torch.backends.cuda
    facts["enabled"] = {"flash": bool(backends.flash_sdp_enabled()), "efficient": bool(backends.mem_efficient_sdp_enabled()),
                        "math": bool(backends.math_sdp_enabled())}
    if hasattr(backends, "cudnn_sdp_enabled"):
        facts["enabled"]["cudnn"] = bool(backends.cudnn_sdp_enabled())
    facts["flash_built"] = bool(getattr(backends, "is_flash_attention_available", lambda: True)())
    facts["cxx11_abi"] = bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True))
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except Exception as exc:
        facts["flex_failed"] = f"torch.nn.attention.flex_attention does not import: {exc}"
    return facts


def main() -> None:
    try:  # before the request: a worker started early imports torch while the advisor loads (issue 27)
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001 - the request's own import reports it
        pass
    request = json.loads(sys.stdin.read())
    if request.get("facts"):
        _emit({"facts": torch_facts()})
        return
    if "batch" in request:
        run_batch(list(request["batch"]))
        return
    _emit(run(request))


if __name__ == "__main__":
    main()
