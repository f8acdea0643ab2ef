"""One judge of what an attention kernel needs from a GPU: the compute-capability range and the dtypes of its
requirement row (data/attention_impls.json, and a kernel package's per-release limits). ATTN005 and ATTN006
(`check`, `recommend`, `doctor`) and the full matrix and its history (advisor/matrix/history.py) all ask it, so
`check` and `matrix --full` cannot disagree.

The range is compared in full (major.minor), because the kernels' own checks are exact: flash-attn before 2.7.3
accepts `is_sm8x || is_sm90`, where is_sm90 is major 9 with minor 0 (csrc/flash_attn/flash_api.cpp), and
FlashAttention-3 ships one Hopper image, sm_90a (hopper/setup.py). ATTN005 used to compare the maximum by major
only, so a 9.x card above 9.0 passed `check` while `matrix --full` refused it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from advisor.candidate import DTYPE_NAMES, SHORT_DTYPE
from advisor.facts import ComputeCapability
from advisor.knowledge.schema import AttentionRequirement

if TYPE_CHECKING:
    from advisor.knowledge import Knowledge

__all__ = ["Outside", "native_dtypes", "outside", "outside_range", "runs_in"]


Outside = Literal["below", "above"]


def outside_range(cc: ComputeCapability, low: str | None, high: str | None) -> Outside | None:
    """Where `cc` falls outside [low, high] (either end optional), or None when inside."""
    if low and cc < ComputeCapability.parse(low):
        return "below"
    if high and cc > ComputeCapability.parse(high):
        return "above"
    return None


def outside(req: AttentionRequirement, cc: ComputeCapability) -> Outside | None:
    """Where `cc` falls outside the kernel's own compute-capability range."""
    return outside_range(cc, req.min_compute_capability, req.max_compute_capability)


def runs_in(req: AttentionRequirement, dtype: str) -> bool:
    """Whether the kernel takes inputs in `dtype` (the flash kernels: fp16 and bf16 only)."""
    return dtype in req.dtypes


def native_dtypes(knowledge: Knowledge, cc: ComputeCapability | None, gfx_arch: str | None = None) -> list[str]:
    """The dtypes a GPU runs natively (the capability table; emulated does not count). DTYPE001 (`check`,
    `recommend`) and the full matrix ask this one judge, so they cannot disagree about bf16 on a compute
    capability."""
    support = knowledge.dtype_support(cc, gfx_arch)
    return [d for d in DTYPE_NAMES if getattr(support, SHORT_DTYPE[d])]
