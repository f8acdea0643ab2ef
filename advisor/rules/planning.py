"""Findings the planner itself raises (they need the whole candidate set or the memory estimate).

Registered like every rule so they have a stable code, a 'why' and a fix in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.findings import Finding
from advisor.rules.base import Candidate, Context, rule


def memory_fix(c: Candidate, quantization_helps: bool = True) -> str:
    """MEM001's fix for this candidate: never suggest the quantization it already has (issue 17)."""
    tail = "spread over more GPUs, or shorten --seq-len / --batch"
    if not quantization_helps:
        return f"bitsandbytes barely shrinks this model (QUANT007 names what does); {tail}"
    if c.quantization == "none":
        return f"quantize (8-bit or 4-bit), {tail}"
    if c.quantization == "8bit":
        return f"quantize to 4-bit (load_in_4bit), {tail}"
    return f"{tail}, or choose a smaller model (4-bit is the smallest bitsandbytes format)"


@rule("MEM001", "does not fit in memory", scope="plan",
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
