"""torch's build, device count and SDPA backends. The only probe module that imports torch.

SDPA backend usability is a pure function of facts (`sdpa_backends`), so a synthetic target
(`--gpu T4`) gets the same answer a real T4 would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from packaging.version import Version

from advisor.facts import ComputeCapability, SdpaBackend, TorchInfo, Unavailable

__all__ = ["probe_torch", "sdpa_backends"]


def _release(version: str) -> Version:
    return Version(Version(version).base_version)


def _span(backend: str, torch_version: str, default: tuple[int, int, int, int]) -> tuple[
        ComputeCapability, ComputeCapability, str]:
    """The compute-capability range torch `torch_version` builds this SDPA kernel for, as its own wheel states it
    (data/sdpa_backends.json: 'only supports gpu architectures in the range [sm80, sm120]' in torch 2.7.0), and
    the citation; `default` when the table has no value."""
    from advisor.knowledge import data_dir
    from advisor.knowledge.sdpa import sdpa_limit, sm_range

    limit = sdpa_limit(data_dir(), backend, "cuda_cc_range", torch_version)
    span = sm_range(limit) if limit is not None else None
    if span is None or limit is None:
        low, high = (ComputeCapability(major=default[0], minor=default[1]),
                     ComputeCapability(major=default[2], minor=default[3]))
        return low, high, "unverified"
    return span[0], span[1], limit.cite()


def _cudnn_opt_in(torch_version: str) -> str | None:
    """Why cuDNN SDPA does not run by default in this release, or None: torch 2.3 and 2.4 run it only with
    TORCH_CUDNN_SDPA_ENABLED=1 (the switch is in their libtorch_cuda.so, gone from 2.5; data/sdpa_backends.json)."""
    from advisor.knowledge import data_dir
    from advisor.knowledge.sdpa import sdpa_limit

    if _release(torch_version) < Version("2.3"):
        return f"torch {torch_version} < 2.3 has no cuDNN SDPA backend (unverified: no older wheel was checked)"
    limit = sdpa_limit(data_dir(), "cudnn", "opt_in_env", torch_version)
    if limit is not None and limit.value == [1]:
        return f"torch {torch_version} runs cuDNN SDPA only with TORCH_CUDNN_SDPA_ENABLED=1 ({limit.cite()})"
    return None


def sdpa_backends(
    torch_version: str,
    *,
    cuda: str | None,
    hip: str | None,
    cudnn: str | None,
    capabilities: Sequence[ComputeCapability],
    enabled: Mapping[str, bool] | None = None,
    flash_built: bool = True,
) -> dict[str, SdpaBackend]:
    """Which SDPA kernels can run on these GPUs (the weakest card decides), with the reason when not."""
    enabled = enabled or {}
    if _release(torch_version) < Version("2.1.1"):
        why = f"torch {torch_version} < 2.1.1: transformers does not use SDPA"
        return {name: SdpaBackend(usable=name == "math", reason=why) for name in ("flash", "efficient", "cudnn", "math")}
    result: dict[str, SdpaBackend] = {"math": SdpaBackend(usable=True, reason="always available (slow, O(L^2) memory)")}
    if cuda is None and hip is None:
        why = "torch is a CPU build: SDPA uses its CPU kernels (flash-style CPU kernel or math)"
        for name in ("flash", "efficient", "cudnn"):
            result[name] = SdpaBackend(usable=False, reason=why)
        return _order(result)
    if not capabilities:
        for name in ("flash", "efficient", "cudnn"):
            result[name] = SdpaBackend(usable=False, reason="no GPU visible")
        return _order(result)
    low = min(capabilities, key=lambda cc: cc.as_tuple)
    flash_low, max_flash, flash_source = _span("flash", torch_version, (8, 0, 12, 1))
    eff_low = _span("mem_efficient", torch_version, (5, 0, 12, 1))[0]
    cudnn_low = _span("cudnn", torch_version, (8, 0, 12, 1))[0]
    if not flash_built:
        result["flash"] = SdpaBackend(usable=False, reason="this torch build has no flash-attention kernel")
    elif hip is not None:
        result["flash"] = SdpaBackend(usable=True, reason="ROCm: AOTriton flash kernel")
    elif low < flash_low:
        result["flash"] = SdpaBackend(
            usable=False, reason=f"needs compute capability >= {flash_low}, this GPU has {low}")
    elif low > max_flash:
        result["flash"] = SdpaBackend(
            usable=False, reason=f"torch {torch_version} builds flash SDPA only up to sm{max_flash.major}{max_flash.minor}"
                                 f" ({flash_source})"
        )
    else:
        unverified = f" (its sm range is unverified for torch {torch_version})" if flash_source.startswith(
            "unverified") else ""
        result["flash"] = SdpaBackend(usable=True, reason="fp16/bf16, head_dim <= 256, no attention mask" + unverified)
    if low < eff_low and hip is None:
        result["efficient"] = SdpaBackend(
            usable=False, reason=f"needs compute capability >= {eff_low}, this GPU has {low}")
    else:
        result["efficient"] = SdpaBackend(usable=True, reason="any mask; fp32 too; no GQA on ROCm")
    if hip is not None:
        result["cudnn"] = SdpaBackend(usable=False, reason="cuDNN attention is CUDA-only")
    elif _cudnn_opt_in(torch_version) is not None:
        result["cudnn"] = SdpaBackend(usable=False, reason=str(_cudnn_opt_in(torch_version)))
    elif cudnn is None or Version(cudnn) < Version("9.0"):
        result["cudnn"] = SdpaBackend(usable=False, reason=f"needs cuDNN >= 9.0, found {cudnn or 'none'}")
    elif low < cudnn_low:
        result["cudnn"] = SdpaBackend(
            usable=False, reason=f"needs compute capability >= {cudnn_low}, this GPU has {low}")
    else:
        result["cudnn"] = SdpaBackend(usable=True, reason="fp16/bf16, head_dim <= 128 (256 on sm90+ with new cuDNN)")
    for name, on in enabled.items():
        if not on and name in result and result[name].usable is True:
            result[name] = SdpaBackend(usable=False, reason=f"disabled in this process (torch.backends.cuda.enable_{name}_sdp(False))")
    return _order(result)


def _order(backends: dict[str, SdpaBackend]) -> dict[str, SdpaBackend]:
    return {name: backends[name] for name in ("flash", "efficient", "cudnn", "math") if name in backends}


def _cudnn_version(torch: object) -> str | None:
    raw = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[attr-defined]
    if not raw:
        return None
    raw = int(raw)
    if raw >= 90000:  # cuDNN 9 encodes major*10000 + minor*100 + patch
        return f"{raw // 10000}.{(raw % 10000) // 100}.{raw % 100}"
    return f"{raw // 1000}.{(raw % 1000) // 100}.{raw % 100}"


def probe_torch(capabilities: Sequence[ComputeCapability]) -> TorchInfo | Unavailable:
    """Read torch's build; `capabilities` come from NVML so no CUDA context is created here."""
    try:
        import torch
    except ImportError:
        return Unavailable(reason="torch is not installed: `pip install torch`")
    except Exception as exc:  # a broken torch install must not end the report
        return Unavailable(reason=f"`import torch` failed: {type(exc).__name__}: {exc}")
    version = torch.__version__.split("+")[0]
    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    try:
        cudnn = _cudnn_version(torch) if cuda else None
    except Exception:
        cudnn = None
    cuda_available: bool | Unavailable
    device_count: int | Unavailable
    try:
        cuda_available = bool(torch.cuda.is_available())
        device_count = int(torch.cuda.device_count()) if cuda_available else 0
    except Exception as exc:
        cuda_available = device_count = Unavailable(reason=f"torch.cuda failed: {exc}")
    backends = torch.backends.cuda
    enabled = {
        "flash": bool(backends.flash_sdp_enabled()),
        "efficient": bool(backends.mem_efficient_sdp_enabled()),
        "math": bool(backends.math_sdp_enabled()),
    }
    if hasattr(backends, "cudnn_sdp_enabled"):
        enabled["cudnn"] = bool(backends.cudnn_sdp_enabled())
    flash_built = bool(getattr(backends, "is_flash_attention_available", lambda: True)())
    try:
        from torch.nn.attention import flex_attention  # noqa: F401

        flex: bool | Unavailable = True
    except Exception as exc:
        flex = Unavailable(reason=f"torch.nn.attention.flex_attention does not import: {exc}")
    return TorchInfo(
        version=version,
        cuda=cuda,
        hip=hip,
        cudnn=cudnn,
        cuda_available=cuda_available,
        device_count=device_count,
        cxx11_abi=bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)),
        sdpa_backends=sdpa_backends(
            version,
            cuda=cuda,
            hip=hip,
            cudnn=cudnn,
            capabilities=capabilities if cuda_available is True else (),
            enabled=enabled,
            flash_built=flash_built,
        ),
        flex_attention=flex,
    )
