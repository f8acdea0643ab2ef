"""Findings the planner itself raises (they need the whole candidate set or the memory estimate).

Registered like every rule so they have a stable code, a 'why' and a fix in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.findings import Finding
from advisor.rules.base import Context, rule


def memory_fix(c: Candidate, *, gpu_count: int, quantization_helps: bool = True) -> str:
    """MEM001's fix for this candidate: only what would change its verdict, so an 8-bit or 4-bit plan is never
    told to quantize, and a model bitsandbytes barely shrinks is never told to try it (issues 14 and 17)."""
    remedies = []
    if not quantization_helps:
        remedies.append("bitsandbytes barely shrinks this model (QUANT007 names what does)")
    elif c.quantization == "none":
        remedies.append("quantize (8-bit or 4-bit)")
    elif c.quantization == "8bit":
        remedies.append("quantize to 4-bit (load_in_4bit)")
    if c.placement == "gpu" and gpu_count > 1:
        remedies.append('spread over all GPUs (device_map="auto")')
    elif c.placement != "cpu":
        remedies.append("use more GPUs or a larger one")
    remedies.append("shorten --seq-len / --batch")
    return ", ".join(remedies[:-1]) + " or " + remedies[-1]


@rule("MEM001", "does not fit in memory", scope="plan", remedy="switch",
      fix="quantize (8-bit or 4-bit) when unquantized, 4-bit when 8-bit; spread over more GPUs, or shorten "
          "--seq-len / --batch")
def memory_fit(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Weights (by dtype, or 1 / ~0.52 bytes per quantized parameter), the KV cache for --batch and --seq-len,
    the activations of one prefill, the CUDA context and allocator slack must fit the GPU memory (free memory when
    probed, the card's total when taken from the GPU table), or the host RAM on a CPU target. With several GPUs,
    accelerate also keeps room for the largest layer on each card."""
    return iter(())


@rule("PLAN001", "attention support unknown", scope="plan",
      fix="install the transformers release that has this architecture, or pass --attn eager")
def support_unknown(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """The model type is in neither the installed transformers nor a shipped table (custom code, or a newer
    release), so only eager attention is certain."""
    return iter(())
