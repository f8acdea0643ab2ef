"""The simulated figures for a planner candidate, or None where simulation cannot run (no torch, or the class
fails on meta tensors), so advisor.memory falls back to its closed form."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.estimate.simulate import SimResult
    from advisor.facts import GpuInfo
    from advisor.model import ModelSpec

__all__ = ["simulated"]

_log = logging.getLogger(__name__)


def simulated(model: ModelSpec, *, dtype: str, quantization: str, attn: str, batch: int, prompt_len: int,
              seq_len: int, gpus: tuple[GpuInfo, ...] = (), sdpa_backends: tuple[str, ...] | None = None,
              padded: bool = False) -> SimResult | None:
    """Simulate `model` for one candidate on the first of `gpus` (or the CPU)."""
    if not model.config or model.trust_remote_code:
        return None
    try:
        from advisor.estimate.simulate import simulate
    except ImportError:
        return None
    capability: tuple[int, int] = (0, 0)
    if gpus:
        cc = gpus[0].compute_capability
        major, minor = getattr(cc, "major", None), getattr(cc, "minor", None)
        capability = (int(major), int(minor)) if major is not None and minor is not None else (8, 0)
    try:
        return simulate(
            dict(model.config), architecture=model.architecture, dtype=dtype, attn=attn, quantization=quantization,
            batch=batch, prompt_len=prompt_len, seq_len=seq_len, padded=padded,
            device="cuda" if gpus else "cpu", capability=capability,
            sdpa_backends=sdpa_backends if sdpa_backends is not None else ("flash", "efficient", "math"),
        )
    except Exception as exc:  # noqa: BLE001 - a class that cannot run on meta tensors keeps the closed form
        _log.debug("simulation of %s failed: %s: %s", model.name, type(exc).__name__, exc)
        return None
