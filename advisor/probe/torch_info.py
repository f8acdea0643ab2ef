"""torch's build, device count and SDPA backends, from the facts `kernel_worker.torch_facts` reads (in a worker
started early, or in this process).

SDPA backend usability is a pure function of facts (`sdpa_backends`), so a synthetic target
(`--gpu T4`) gets the same answer a real T4 would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from packaging.version import Version

from advisor.facts import ComputeCapability, SdpaBackend, TorchInfo, Unavailable

__all__ = ["prestarted_facts", "probe_torch", "sdpa_backends"]

FACTS_TIMEOUT = 300.0  # `import torch` on a cold disk: seconds, never minutes


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


def prestarted_facts() -> dict[str, Any] | None:
    """The torch facts from the worker started on the CLI's first line (advisor.isolation.prestart), torch
    imported by now; None where none was started (the Python API): then they are read in this process. A worker
    that crashes or hangs importing torch is that answer, not ours."""
    import json

    from advisor.isolation import prestart
    from advisor.isolation.child import _last_line, _signal_text

    proc = prestart.claim(prestart.TORCH)
    if proc is None:
        return None
    try:
        out, err = proc.communicate(json.dumps({"facts": True}).encode(), timeout=FACTS_TIMEOUT)
    except BaseException as exc:  # a hang, or Ctrl-C: the worker's whole group goes
        prestart.kill_group(proc, reap=False)
        proc.communicate()
        if not isinstance(exc, Exception):
            raise
        return {"unavailable": f"`import torch` did not finish in {FACTS_TIMEOUT:g} s"}
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("facts"), dict):
            return dict(message["facts"])
    why = _signal_text(proc.returncode) if proc.returncode < 0 else f"exited with status {proc.returncode}"
    last = _last_line(err)
    return {"unavailable": f"`import torch` {why} in a child" + (f"; last output: {last}" if last else "")}


def probe_torch(capabilities: Sequence[ComputeCapability], facts: dict[str, Any] | None = None) -> TorchInfo | Unavailable:
    """Read torch's build; `capabilities` come from NVML so no CUDA context is created here. `facts`: what
    `kernel_worker.torch_facts` printed in a worker started before the CLI loaded (issue 27); without them, read
    in this process (imports torch)."""
    if facts is None:
        from advisor.probe.kernel_worker import torch_facts

        facts = torch_facts()
    if "unavailable" in facts:
        return Unavailable(reason=str(facts["unavailable"]))
    version = str(facts["version"])
    cuda, hip, cudnn = facts.get("cuda"), facts.get("hip"), facts.get("cudnn")
    cuda_available: bool | Unavailable
    device_count: int | Unavailable
    if "cuda_failed" in facts:
        cuda_available = device_count = Unavailable(reason=str(facts["cuda_failed"]))
    else:
        cuda_available, device_count = bool(facts["cuda_available"]), int(facts["device_count"])
    flex: bool | Unavailable = Unavailable(reason=str(facts["flex_failed"])) if "flex_failed" in facts else True
    return TorchInfo(
        version=version,
        cuda=cuda,
        hip=hip,
        cudnn=cudnn,
        cuda_available=cuda_available,
        device_count=device_count,
        cxx11_abi=bool(facts["cxx11_abi"]),
        sdpa_backends=sdpa_backends(
            version,
            cuda=cuda,
            hip=hip,
            cudnn=cudnn,
            capabilities=capabilities if cuda_available is True else (),
            enabled={name: bool(on) for name, on in facts["enabled"].items()},
            flash_built=bool(facts["flash_built"]),
        ),
        flex_attention=flex,
    )
