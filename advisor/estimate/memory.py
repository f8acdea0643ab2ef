"""Memory arithmetic: weights by dtype and quantization, KV cache, activations, and per-device budgets.

The constants are the documented ones (bitsandbytes block sizes, CUDA context size) and are checked
against measured peaks by `benchmarks/memory_table.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from advisor.candidate import BYTES
from advisor.facts import GpuInfo
from advisor.model.spec import ModelSpec
from advisor.numbers import MiB

__all__ = ["MemoryEstimate", "estimate_memory", "CUDA_CONTEXT_BYTES"]

# NF4 with double quantization: 4 bits + 8-bit absmax per 64 values + fp32 per 256 blocks (bitsandbytes quantize_4bit).
BYTES_4BIT = 0.5 + 1 / 64 + 4 / (64 * 256)
# LLM.int8: int8 weight + one fp32 scale per output row (negligible next to the weight).
BYTES_8BIT = 1.0
# A CUDA context and cuBLAS workspace live outside torch's allocator: ~300-800 MB per process and GPU.
CUDA_CONTEXT_BYTES = 512 * MiB
# Caching-allocator slack: blocks reserved but not allocated at the peak.
ALLOCATOR_SLACK = 0.05


class MemoryEstimate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    total_bytes: int
    budget_bytes: int
    fits: bool
    devices: int = 1
    largest_layer_bytes: int = 0
    # simulated: the model's class run on meta tensors (advisor.estimate.simulate); estimated: the closed form here
    method: Literal["simulated", "estimated"] = "estimated"

    @property
    def peak_allocated_bytes(self) -> int:
        """What torch.cuda.max_memory_allocated() should report: everything but the context and slack."""
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes


def weight_bytes(model: ModelSpec, dtype: str, quantization: str) -> int:
    pre = model.checkpoint_quantization
    if pre is not None and pre.bits is not None and quantization == "none":  # stored quantized (advisor.model.prequantized)
        from advisor.knowledge.quant_methods import method_row
        from advisor.model.quantizable import quantizable_by

        method = method_row(pre.method_key)
        q = quantizable_by(model, method) if method is not None else model.quantizable_param_count
        return int(q * pre.bits / 8 + (model.param_count - q) * BYTES[dtype])
    if quantization not in ("none", "8bit", "4bit"):  # another method (issue 17): its own share and bits
        from advisor.knowledge.quant_methods import method_for
        from advisor.model.quantizable import quantizable_by

        method = method_for(quantization)
        if method is not None and method.candidate is not None:
            q = quantizable_by(model, method)
            per = BYTES_8BIT if method.candidate.bits == 8 else BYTES_4BIT
            return int(q * per + (model.param_count - q) * BYTES[dtype])
    other = model.param_count - model.quantizable_param_count
    if quantization == "8bit":
        return int(model.quantizable_param_count * BYTES_8BIT + other * BYTES[dtype])
    if quantization == "4bit":
        return int(model.quantizable_param_count * BYTES_4BIT + other * BYTES[dtype])
    return model.param_count * BYTES[dtype]


def kv_cache_bytes(model: ModelSpec, dtype: str, batch: int, seq_len: int) -> int:
    """2 (K and V) x layers x KV heads x head_dim x tokens x batch; sliding-window layers cap the tokens."""
    if not model.generative:
        return 0
    tokens = min(seq_len, model.sliding_window) if model.sliding_window else seq_len
    per_token = 2 * model.num_layers * model.num_key_value_heads * model.head_dim * BYTES[dtype]
    cross = 2 if model.is_encoder_decoder else 1  # encoder-decoder keeps a cross-attention cache too
    return per_token * tokens * batch * cross


def score_bytes_per_element(model: ModelSpec, dtype: str, attn: str, *, gpu: bool) -> int:
    """Bytes per (query, key) pair when the attention scores are materialised; 0 when a fused kernel runs.

    eager: the scores, their masked copy and the float32 softmax with its cast back (3b + 4). SDPA on a GPU in
    float32 with grouped-query attention and no padding mask: transformers then passes `enable_gqa=True`, which
    neither flash nor cuDNN (no float32) nor memory-efficient attention (no GQA) takes, so the math kernel runs
    (2b + 2; transformers/integrations/sdpa_attention.py `use_gqa_in_sdpa`). A padded batch gets a mask and
    repeated K/V instead and runs memory-efficient attention; the estimate keeps the worse case.
    """
    b = BYTES[dtype]
    if attn == "eager":
        return 3 * b + 4
    gqa = 0 < model.num_key_value_heads < model.num_attention_heads
    if gpu and attn == "sdpa" and dtype == "float32" and gqa:
        return 2 * b + 2
    return 0


def activation_bytes(
    model: ModelSpec, dtype: str, attn: str, batch: int, prefill_len: int, *, gpu: bool = True,
    quantization: str = "none",
) -> int:
    """The transient peak of the longest prefill: the larger of a layer's attention and MLP phase, plus the logits.

    The two phases are never alive together: the MLP phase holds the residual stream and the gate, up and product
    intermediates; the attention phase holds the projections and any materialised score matrix. LLM.int8's outlier
    decomposition adds about half again. Calibrated and checked against docs/benchmarks (H100).
    """
    b = BYTES[dtype]
    tokens = batch * prefill_len
    mlp = tokens * (4 * model.hidden_size + 2 * model.intermediate_size) * b
    scores = batch * model.num_attention_heads * prefill_len**2 * score_bytes_per_element(model, dtype, attn, gpu=gpu)
    attention = tokens * 4 * model.hidden_size * b + scores
    logits = batch * model.vocab_size * 4 * 2 if model.generative else tokens * model.hidden_size * b
    total = max(mlp, attention) + logits
    return int(total * 1.5 if quantization == "8bit" else total)


def estimate_memory(
    model: ModelSpec,
    *,
    dtype: str,
    quantization: str,
    attn: str,
    batch: int,
    seq_len: int,
    gpus: tuple[GpuInfo, ...] = (),
    host_bytes: int | None = None,
    prompt_len: int | None = None,
    simulate: bool = False,
    always_simulate: bool = False,
    cache: bool = True,
    sdpa_backends: tuple[str, ...] | None = None,
    padded: bool = False,
) -> MemoryEstimate:
    """Estimate for running on `gpus` together (or the host RAM when `gpus` is empty).

    The KV cache holds `seq_len` tokens; activations are those of a prefill of `prompt_len` (default: all of
    `seq_len` in one forward, the worst case). With `simulate`, weights, KV cache and activations come from
    running the model's class on meta tensors where torch and transformers are installed (`method` says which);
    `always_simulate` (--simulate) runs it even where that costs an import of transformers; `cache=False`
    (--no-cache) neither reads nor writes a simulation in the analysis cache.
    """
    prefill = min(prompt_len or seq_len, seq_len)
    sim = None
    usable = quantization in ("none", "8bit", "4bit")  # the simulation knows bitsandbytes' layout only
    if usable and quantization in ("8bit", "4bit") and model.quantizable_release is not None:
        from advisor.knowledge.installed import installed_version

        # the simulation applies the installed release's rule: another target release keeps the closed form
        usable = model.quantizable_release == installed_version()
    if model.checkpoint_quantization is not None:  # its packed layout is the quantizer's: the closed form
        usable = False
    if usable:  # without `simulate`, only what needs no run: a cached result or an exact formula (issue 27)
        from advisor.estimate.adapter import simulated

        sim = simulated(model, dtype=dtype, quantization=quantization, attn=attn, batch=batch, prompt_len=prefill,
                        seq_len=seq_len, gpus=gpus[:1], sdpa_backends=sdpa_backends, padded=padded,
                        always_simulate=always_simulate, cache=cache, run=simulate)
    if sim is not None:
        weights, kv, act = sim.weights_bytes, sim.kv_cache_bytes, sim.activation_bytes + sim.workspace_bytes
    else:
        weights = weight_bytes(model, dtype, quantization)
        kv = kv_cache_bytes(model, dtype, batch, seq_len)
        act = activation_bytes(model, dtype, attn, batch, prefill, gpu=bool(gpus), quantization=quantization)
    layers = max(model.num_layers, 1)
    largest_layer = int(weights / layers) if len(gpus) > 1 else 0
    if gpus:
        overhead = len(gpus) * CUDA_CONTEXT_BYTES + int(ALLOCATOR_SLACK * (weights + kv + act))
        budget = sum(g.usable_memory_bytes or 0 for g in gpus)
    else:
        overhead = int(ALLOCATOR_SLACK * (weights + kv + act))
        budget = host_bytes or 0
    # accelerate's infer_auto_device_map keeps room for the largest layer on every device it fills
    total = weights + kv + act + overhead + largest_layer * max(len(gpus) - 1, 0)
    return MemoryEstimate(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        activation_bytes=act,
        overhead_bytes=overhead,
        total_bytes=total,
        budget_bytes=budget,
        fits=budget > 0 and total <= budget,
        devices=max(len(gpus), 1),
        largest_layer_bytes=largest_layer,
        method="simulated" if sim is not None else "estimated",
    )


def method_label(method: str) -> str:
    """How a figure was made, for people: the closed form says how far off it was measured to be (issue 27)."""
    if method != "estimated":
        return method
    from advisor.knowledge.memory_tables import closed_form_error

    bound = closed_form_error()
    if bound is None:
        return "estimated: closed form"
    return (f"estimated: closed form, within {100 * bound['low']:+.0f}%/{100 * bound['high']:+.0f}% on "
            f"{bound['rows']} measured rows")


def max_memory_map(estimate: MemoryEstimate, gpus: tuple[GpuInfo, ...]) -> dict[int, str]:
    """Per-GPU caps for accelerate: each card's memory less its context and its share of KV cache and activations."""
    runtime_share = (estimate.kv_cache_bytes + estimate.activation_bytes) / max(len(gpus), 1)
    caps = {}
    for gpu in gpus:
        usable = gpu.usable_memory_bytes or 0
        cap = int(usable * (1 - ALLOCATOR_SLACK) - CUDA_CONTEXT_BYTES - runtime_share)
        caps[gpu.index] = f"{max(cap, 0) // MiB}MiB"
    return caps
