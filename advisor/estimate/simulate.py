"""Simulated execution: run the model's own class on meta tensors and read the peak of live bytes.

The closed form in advisor.estimate.memory was fitted to Llama-like decoders and missed other families by up to 58%
(issue 13): a masked-LM head's logits over every token, multi-query caches, ALiBi biases, GPT-2's attention.
Here the exact class (the head `architectures` names), `attn_implementation`, dtype, batch and lengths run on
meta tensors under `LiveBytes`, so every tensor the real forward allocates is counted, with no data:

1. prefill: the prompt through the model with a fresh cache, as `generate()` runs it (`logits_to_keep=1`, then
   the last logits copied to float32);
2. one decode step with the cache at its final length (prompt + new tokens - 1), which is the largest step:
   the cache's `torch.cat` holds the old and the new copy of one layer at once.

Encoders (no generation) run one forward over the prompt. SDPA goes to the kernel torch would run on the target
(advisor.estimate.sdpa); bitsandbytes layers get their own buffers (advisor.estimate.bnb).

Fast: a decoder whose layers repeat with period p (1, or the `layer_types` pattern) runs with 2p and 3p layers and
extrapolates linearly, which is exact: at the peak every layer's cache is alive and only the last layer's
transients, so peak(n) = a + n * per-layer (tests/unit/test_simulate.py checks it against a full run).
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["CAPABILITY_THRESHOLDS", "SimResult", "attn_class", "capability_class", "combine", "cublas_workspace_bytes",
           "layer_plan", "run_tracked", "simulate", "simulate_config", "simulation_target"]


class SimResult(BaseModel):
    """JSON-serialisable outcome of one simulation (a pure function of its arguments, so it can be cached by key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights_bytes: int
    activation_bytes: int  # the peak of live bytes over prefill and decode, less the cache alive at that peak
    kv_cache_bytes: int  # the cache at its final length
    workspace_bytes: int  # cuBLAS workspace, allocated through torch's allocator at the first matmul (CUDA)
    peak_bytes: int  # weights + workspace + the peak of live bytes: what torch.cuda.max_memory_allocated() reports
    prefill_peak_bytes: int
    decode_peak_bytes: int
    sdpa_backends: dict[str, int]
    layers_simulated: tuple[int, ...]
    layers: int
    ops: int
    seconds: float


_GEN_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


# Every compute capability the simulator compares a target's with: `cublas_workspace_bytes` (sm90) and the SDPA
# kernel gates of estimate/sdpa.py (flash sm80; memory-efficient sm50, bf16 sm80, GEMM alignment sm70 with half
# and sm80). Two capabilities between the same thresholds simulate alike; tests/unit/test_simulation_key.py fails
# on a comparison in advisor/estimate/ with a capability not listed here.
CAPABILITY_THRESHOLDS: tuple[tuple[int, int], ...] = ((5, 0), (7, 0), (8, 0), (9, 0))
_BACKEND_GATES = {"flash": (8, 0), "efficient": (5, 0)}  # sdpa.py `_flash_ok`, `_efficient_ok`; math: the fallback


def capability_class(capability: tuple[int, ...]) -> tuple[int, int]:
    """The lowest capability the simulator treats like this one (the highest threshold at or below it): (8, 6)
    and (8, 9) simulate as (8, 0), (7, 5) as (7, 0), (12, 0) as (9, 0)."""
    cap = tuple(capability)
    return max((t for t in CAPABILITY_THRESHOLDS if cap >= t), default=(0, 0))


def attn_class(attn: str) -> str:
    """The attention the simulator tells apart: eager, sdpa, or `fused` for every other implementation
    (flash_attention_2/3/4, flex_attention: output + log-sum-exp, no scores, replayed as SDPA's flash kernel)."""
    return attn if attn in ("eager", "sdpa") else "fused"


def simulation_target(*, attn: str, device: str, capability: tuple[int, ...], sdpa_backends: Collection[str]
                      ) -> dict[str, Any]:
    """The target inputs as the simulator distinguishes them, for `simulate` and for every key of its results
    (advisor.estimate.adapter, formula_store): the attention's class; on the CPU no capability and no backend set
    (torch's own CPU chooser decides, sdpa.py `choose_backend`); on CUDA the capability's class and, of the usable
    backends, those whose gate that class passes (flash below sm80 is never chosen), math always (the fallback)."""
    if device != "cuda":
        return {"attn": attn_class(attn), "device": device, "capability": (0, 0), "sdpa_backends": ()}
    cap = capability_class(capability)
    usable = tuple(b for b, gate in _BACKEND_GATES.items() if b in sdpa_backends and cap >= gate)
    return {"attn": attn_class(attn), "device": device, "capability": cap, "sdpa_backends": (*usable, "math")}


def cublas_workspace_bytes(capability: tuple[int, ...]) -> int:
    """torch's default cuBLAS workspace per handle (aten/src/ATen/cuda/CublasHandlePool.cpp,
    `getChosenWorkspaceSize`): ":4096:8" (32 MiB) on sm90+, ":4096:2:16:8" (8 MiB + 128 KiB) before."""
    return 4096 * 1024 * 8 if tuple(capability) >= (9, 0) else 4096 * 1024 * 2 + 16 * 1024 * 8


def _text_cfg(config: Any) -> Any:
    try:
        return config.get_text_config(decoder=True)
    except TypeError:
        return config.get_text_config()


def _layer_key(cfg: Any) -> str | None:
    """The key of the layer count, a stored one first: LongCat-Flash derives `num_hidden_layers` as twice its
    stored `num_layers` and halves what is set, so runs of 2 and 3 layers both built one (-21% on the H100)."""
    keys = ("num_hidden_layers", "n_layer", "num_layers")
    stored = getattr(cfg, "__dict__", {})
    return next((k for k in keys if isinstance(stored.get(k), int)), None) or next(
        (k for k in keys if isinstance(getattr(cfg, k, None), int)), None)


def _period(cfg: Any) -> int | None:
    """The repeat length of the layer pattern, or None when layers differ in ways the pattern does not say."""
    if any(getattr(cfg, k, None) not in (None, [], 0, 1) for k in ("mlp_only_layers", "first_k_dense_replace",
                                                                    "moe_layer_freq")):
        return None
    if getattr(cfg, "decoder_sparse_step", 1) not in (None, 1):
        return None
    types = getattr(cfg, "layer_types", None)
    if not types:
        return 1
    for p in range(1, len(types) + 1):
        if len(types) % p == 0 and types == types[:p] * (len(types) // p):
            return p
    return None


def _config(config_dict: dict[str, Any]) -> Any:
    """The config object of a saved dict. A key the class now derives (a read-only property: Mamba's `layer_types`,
    Falcon-H1's `layers_block_type` in transformers 5.25, stored by 5.17's `save_pretrained`) is left out."""
    from transformers import AutoConfig

    cfg = {k: v for k, v in config_dict.items() if k not in ("transformers_version", "_name_or_path")}
    model_type = cfg.pop("model_type")
    for _ in range(len(cfg) + 1):
        try:
            return AutoConfig.for_model(model_type, **cfg)
        except AttributeError as exc:
            name = next((k for k in cfg if f"'{k}'" in str(exc)), None)
            if name is None:
                raise
            cfg.pop(name)
    raise AssertionError("unreachable")


def _build(config_dict: dict[str, Any], architecture: str | None, layers: int | None, dtype: Any, attn: str) -> Any:
    import torch
    import transformers

    config = _config(config_dict)
    if layers is not None:
        text = _text_cfg(config)
        setattr(text, _layer_key(text) or "num_hidden_layers", layers)
        for name in ("layer_types", "layers_block_type"):
            if isinstance(text.__dict__.get(name), list):  # a stored pattern; Mamba's is a read-only property
                setattr(text, name, list(getattr(text, name))[:layers])
    config._attn_implementation = attn
    for sub in ("text_config", "vision_config", "audio_config", "encoder", "decoder"):
        if getattr(config, sub, None) is not None and hasattr(getattr(config, sub), "_attn_implementation"):
            getattr(config, sub)._attn_implementation = attn
    cls = getattr(transformers, architecture) if architecture else transformers.AutoModel
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x
        from transformers.modeling_utils import no_init_weights
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # as from_pretrained(dtype=...) builds it
    try:
        with torch.device("meta"), no_init_weights():
            model = cls._from_config(config, dtype=dtype)
    finally:
        torch.set_default_dtype(previous)
    model.tie_weights()  # init_weights, which ties them, is what no_init_weights skips
    return model.eval()


def _weights(model: Any, quantization: str) -> list[int]:
    """The bytes of each tensor loaded onto the device, in the order the model creates them: parameters in the
    load dtype, or bitsandbytes' layout for the modules it quantizes; tied weights once; and the buffers, which
    load onto the device too: GPT-BigCode keeps an n_positions² boolean causal mask (`GPTBigCodeModel.__init__`,
    `self.bias = nn.Buffer(torch.tril(torch.ones((max_positions, max_positions), dtype=torch.bool)),
    persistent=False)` in transformers 5.17 models/gpt_bigcode/modeling_gpt_bigcode.py), 64 MiB at 8,192
    positions: the -6% to -14% of every GPT-BigCode row measured on the H100."""
    from advisor.estimate.bnb import _shape, quantized_linears, quantized_weight_parts

    modules = quantized_linears(model) if quantization != "none" else {}
    quantized = {id(m.weight): m for m in modules.values()}
    seen: set[int] = set()
    sizes: list[int] = []
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in quantized:
            sizes.extend(quantized_weight_parts(*_shape(quantized[id(t)]), quantization))
        else:
            sizes.append(t.numel() * t.element_size())
    return sizes


def _cache_layers(cache: Any) -> list[Any]:
    inner = getattr(cache, "self_attention_cache", cache)
    return list(getattr(inner, "layers", []))


def _grow_cache(cache: Any, length: int) -> None:
    """Replace every self-attention cache layer by one holding `length` tokens (a sliding layer keeps its window).
    A sparse-attention indexer's keys (`indexer_keys`, [batch, tokens, dim]: DeepSeek-V3.2, GLM-MoE-DSA, ...) grow
    with them: left at the prompt, the decode step's mask no longer matched them."""
    import torch

    for layer in _cache_layers(cache):
        keys = getattr(layer, "keys", None)
        if not isinstance(keys, torch.Tensor) or keys.dim() != 4:
            continue
        window = getattr(layer, "sliding_window", None)
        keep = min(length, window - 1) if isinstance(window, int) and window > 0 else length
        for name in ("keys", "values"):
            old = getattr(layer, name)
            setattr(layer, name, torch.empty((*old.shape[:2], keep, old.shape[3]), dtype=old.dtype, device=old.device))
        indexer = getattr(layer, "indexer_keys", None)
        if isinstance(indexer, torch.Tensor) and indexer.dim() == 3:
            layer.indexer_keys = torch.empty((indexer.shape[0], keep, indexer.shape[2]), dtype=indexer.dtype,
                                             device=indexer.device)
        if hasattr(layer, "cumulative_length"):
            layer.cumulative_length = length


def _cache_bytes(cache: Any) -> int:
    import torch

    total = 0
    for inner in (getattr(cache, "self_attention_cache", cache), getattr(cache, "cross_attention_cache", None)):
        for layer in list(getattr(inner, "layers", []) if inner is not None else []):
            for name in ("keys", "values", "indexer_keys"):
                t = getattr(layer, name, None)
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total


def run_tracked(model: Any, *, generative: bool, batch: int, prompt: int, seq_len: int, padded: bool,
                tracker: Any, router: Any = None, device: str | None = None) -> tuple[int, int, int]:
    """Prefill then one decode step at the final cache length, as generate() runs them; (prefill peak, decode peak,
    final cache bytes), peaks being live bytes above what existed before. The model may be on meta (simulation,
    with `router` picking SDPA kernels) or real (tests compare the two under the same tracker). `device` is the
    target's device type (default: the model's)."""
    import contextlib

    import torch

    meta = next(model.parameters()).device
    router = router if router is not None else contextlib.nullcontext()
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    accepts = set(__import__("inspect").signature(model.forward).parameters)
    speech = getattr(model, "main_input_name", "input_ids") == "input_features"
    with torch.no_grad(), router, tracker:  # not inference_mode: composite ops must decompose as on CUDA
        ids = torch.zeros((batch, 1 if speech else prompt), dtype=torch.long, device=meta)
        # generate() passes a mask of ones without padding, which transformers drops (`_ignore_causal_mask_sdpa`)
        mask = torch.ones((batch, prompt), dtype=torch.long, device=meta) if padded and not speech else None
        if mask is not None:
            mask[0, 0] = 0  # real padding, so transformers keeps the mask (on meta: values unknown from here on)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if speech:  # Whisper: no token ids to encode; `ids` stand for the decoder's (the logits processors read them)
            kwargs = {"input_features": _speech_features(torch, model, batch, meta)}
        if not generative:
            model(**kwargs)
            return tracker.peak, 0, 0
        kwargs["use_cache"] = True
        process = _logits_processors(model, ids, seq_len - prompt, encoder_decoder)
        if "logits_to_keep" in accepts:
            kwargs["logits_to_keep"] = 1
        if encoder_decoder:  # generate(): the encoder once, then the decoder from its start token
            kwargs["decoder_input_ids"] = torch.zeros((batch, 1), dtype=torch.long, device=meta)
        out = model(**kwargs)
        last = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        shown = 1 if encoder_decoder else prompt  # the ids generate() holds: the decoder's, for an encoder-decoder
        scores = process(torch.zeros((batch, shown), dtype=torch.long, device=meta), last)
        cache_arg = "past_key_values" if "past_key_values" in accepts or "cache_params" not in accepts else "cache_params"
        cache = getattr(out, cache_arg, None)  # Mamba's models name it `cache_params` (transformers 5.17)
        encoder_out = getattr(out, "encoder_last_hidden_state", None)
        del out, kwargs, scores
        prefill_peak = tracker.peak
        _mark(tracker, "prefill")
        done = prompt if not encoder_decoder else 1
        if seq_len - 1 > done:  # an encoder-decoder asked for no new token (the planner's s == p) decodes one
            _grow_cache(cache, seq_len - 1 if not encoder_decoder else max(seq_len - prompt - 1, 0))
        position = seq_len - 1 if not encoder_decoder else max(seq_len - prompt - 1, 1)
        tracker.reset_peak()
        step: dict[str, Any] = {cache_arg: cache, "use_cache": True}
        token = torch.zeros((batch, 1), dtype=torch.long, device=meta)
        if encoder_decoder:
            from transformers.modeling_outputs import BaseModelOutput

            step.update(decoder_input_ids=token, encoder_outputs=BaseModelOutput(last_hidden_state=encoder_out),
                        attention_mask=mask)
        else:
            step.update(input_ids=token)
            if "cache_position" in accepts or "past_key_values" in accepts:
                step["cache_position"] = torch.full((1,), position, dtype=torch.long, device=meta)
            if mask is not None:
                step["attention_mask"] = torch.ones((batch, seq_len), dtype=torch.long, device=meta)
                step["attention_mask"][0, 0] = 0
        if "logits_to_keep" in accepts:
            step["logits_to_keep"] = 1
        with _decode_context(model, device or meta.type):
            out = model(**step)
        last2 = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        scores = process(torch.zeros((batch, position), dtype=torch.long, device=meta), last2)
        del last, last2, scores
        return prefill_peak, tracker.peak, _cache_bytes(getattr(out, cache_arg, None))


def _speech_features(torch: Any, model: Any, batch: int, device: Any) -> Any:
    """A speech encoder's input (Whisper): log-mel features of the whole window it always encodes (2 frames per
    encoder position, as `advisor bench` feeds it), in the model's dtype; the prompt sets only the decoder's ids."""
    config = model.config
    frames = 2 * int(getattr(config, "max_source_positions", 1500))
    return torch.zeros((batch, int(config.num_mel_bins), frames), dtype=model.dtype, device=device)


def _mark(tracker: Any, phase: str) -> None:
    """Tell a recording allocator (advisor.estimate.trace_formula) where a phase ends."""
    mark = getattr(getattr(tracker, "allocator", None), "mark", None)
    if mark is not None:
        mark(phase)


def _logits_processors(model: Any, ids: Any, new_tokens: int, encoder_decoder: bool) -> Any:
    """generate()'s logits processors for the workload `advisor bench` and `smoke` run (greedy, `min_new_tokens` =
    `max_new_tokens`), built by the model's own `_get_logits_processor` as generate() builds them (transformers
    5.17 and 5.24 generation/utils.py: `_prepare_generation_config`, `_prepare_special_tokens`,
    `_prepare_generated_length`). Each step's fp32 scores pass through them: MinLength and MinNewTokensLength
    each clone the batch x vocabulary scores and mask them with `torch.where` (generation/logits_process.py), a few
    MiB that decide the peak of a small encoder-decoder's decode step: the -5.2% of BART and -4.4% of T5 at batch
    16 x 128 on the H100. A release whose private API differs gets no processors (identity)."""
    def identity(_ids: Any, scores: Any) -> Any:
        return scores

    if new_tokens <= 0 or not hasattr(model, "_get_logits_processor"):
        return identity
    try:
        config, kwargs = model._prepare_generation_config(
            None, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1, pad_token_id=0)
        model._prepare_special_tokens(config, True, device=ids.device, batch_size=ids.shape[0])
        shown = 1 if encoder_decoder else ids.shape[1]
        config = model._prepare_generated_length(config, has_default_max_length=False, has_default_min_length=True,
                                                 model_input_name="input_ids", input_ids_length=shown, inputs_tensor=ids)
        processors = model._get_logits_processor(generation_config=config, input_ids_seq_length=shown,
                                                 encoder_input_ids=ids, device=ids.device, model_kwargs=kwargs)
    except Exception:  # noqa: BLE001 - a private API of another release: simulate without the processors
        return identity

    def process(ids: Any, scores: Any) -> Any:
        for processor in processors:
            try:
                scores = processor(ids, scores)
            except Exception:  # noqa: BLE001, S112 - one that reads token values (no_repeat_ngram): no meta answer
                continue
        return scores

    return process


def _decode_context(model: Any, device: str) -> Any:
    """What generate() wraps its decoding loop in: `_optimize_model_for_decode` (transformers 5.17 and 5.24,
    generation/utils.py) switches MoE experts from `grouped_mm` to `batched_mm` on every device but the CPU, and
    batched_mm gathers each selected expert's weights per token (`self.gate_up_proj[expert_ids]`): 264 MiB for
    Qwen2-MoE's decode step at batch 16, the -15% of that row on the H100. The meta model's own device is "meta",
    so the switch is applied only for a non-CPU target."""
    import contextlib

    optimize = getattr(model, "_optimize_model_for_decode", None)
    if optimize is None or device == "cpu":
        return contextlib.nullcontext()
    return optimize()


def _simulate_layers(config_dict: dict[str, Any], architecture: str | None, layers: int | None, *, dtype: str,
                     attn: str, quantization: str, batch: int, prompt: int, seq_len: int, padded: bool,
                     target: Any, outliers: str = "{}", allocator: Any = None,
                     ) -> tuple[int, int, int, int, dict[str, int], int]:
    """(weights, prefill peak, decode peak, cache, SDPA kernels used, ops) of one run; `allocator` replaces the
    target's own (advisor.estimate.trace_formula records the events through it)."""
    import torch

    from advisor.estimate.allocator import CachingAllocator
    from advisor.estimate.bnb import install_quantized_forward
    from advisor.estimate.sdpa import SdpaRouter, SdpaTarget
    from advisor.estimate.tracker import LiveBytes

    torch_dtype = getattr(torch, dtype)
    fused = attn == "fused"
    model = _build(config_dict, architecture, layers, torch_dtype, "sdpa" if fused else attn)
    sizes = _weights(model, quantization)
    weights = sum(sizes)
    if allocator is None and target["device"] == "cuda":  # count blocks as torch's caching allocator hands them out
        allocator = CachingAllocator()
    if allocator is not None:
        start = allocator.allocated
        for size in sizes:
            allocator.malloc(size)
        weights = allocator.allocated - start
        if target["device"] == "cuda":  # at the first matmul, after loading
            allocator.malloc(cublas_workspace_bytes(tuple(target["capability"])))
        if hasattr(allocator, "mark"):
            allocator.mark("loaded")
    if quantization != "none":
        install_quantized_forward(model, quantization, _outlier_lookup(json.loads(outliers)))
    generative = bool(architecture and architecture.endswith(_GEN_SUFFIXES))
    tracker = LiveBytes(meta_scalars=True, allocator=allocator)
    router = SdpaRouter(SdpaTarget(**{**target, "force": "flash" if fused else None}))
    pre, dec, kv = run_tracked(model, generative=generative, batch=batch, prompt=prompt, seq_len=seq_len, padded=padded,
                               tracker=tracker, router=router, device=target["device"])
    return weights, pre, dec, kv, router.used, tracker.ops


@functools.lru_cache(maxsize=256)
def _simulate_cached(config_json: str, architecture: str | None, dtype: str, attn: str, quantization: str,
                     batch: int, prompt: int, seq_len: int, padded: bool, target_json: str,
                     outliers_json: str = "{}") -> SimResult:
    import transformers

    start = time.perf_counter()
    config_dict = json.loads(config_json)
    target = json.loads(target_json)
    target["usable"] = frozenset(target.get("usable", ("flash", "efficient", "math")))
    target["capability"] = tuple(target.get("capability", (0, 0)))
    del transformers
    n, runs = layer_plan(config_dict)
    args = dict(dtype=dtype, attn=attn, quantization=quantization, batch=batch, prompt=prompt, seq_len=seq_len,
                padded=padded, target=target, outliers=outliers_json)
    parts = [_simulate_layers(config_dict, architecture, layers, **args) for layers in runs]
    return combine(n, runs, parts, target, seconds=time.perf_counter() - start)


def layer_plan(config_dict: dict[str, Any]) -> tuple[int, tuple[int | None, ...]]:
    """(layers, the layer counts to run): 2p and 3p for a decoder repeating with period p (with a single repeat
    the first layer's transients can overlap the embedding's), else (None,), the whole model."""
    text = _text_cfg(_config(config_dict))
    key = _layer_key(text)
    n = int(getattr(text, key)) if key else 0
    period = _period(text) if not text.is_encoder_decoder else None
    if period and n > 3 * period and n % period == 0:
        return n, (2 * period, 3 * period)
    return n, (None,)


def combine(n: int, runs: tuple[int | None, ...], parts: list[tuple[int, int, int, int, dict[str, int], int]],
            target: Mapping[str, Any], *, seconds: float = 0.0) -> SimResult:
    """The SimResult of `layer_plan`'s runs: extrapolated linearly in the repeats, which is exact (module doc)."""
    if len(runs) == 2:
        a, b = parts
        period = int(runs[0] or 0) // 2
        k = n // period - 2
        w, pre, dec, kv = (x + k * (y - x) for x, y in zip(a[:4], b[:4]))
        used = {name: (b[4][name] - count) * (n // period) for name, count in a[4].items()}
        ops, simulated = a[5] + b[5], tuple(int(r or 0) for r in runs)
    else:
        w, pre, dec, kv, used, ops = parts[0]
        simulated = (n,)
    peak = max(pre, dec)
    workspace = cublas_workspace_bytes(tuple(target["capability"])) if target["device"] == "cuda" else 0
    return SimResult(
        weights_bytes=w, activation_bytes=peak - kv, kv_cache_bytes=kv, workspace_bytes=workspace,
        peak_bytes=w + workspace + peak,
        prefill_peak_bytes=pre, decode_peak_bytes=dec, sdpa_backends=used, layers_simulated=simulated, layers=n,
        ops=ops, seconds=round(seconds, 3),
    )


def simulate(config: dict[str, Any], *, architecture: str | None, dtype: str, attn: str, quantization: str = "none",
             batch: int = 1, prompt_len: int, seq_len: int | None = None, padded: bool = False,
             device: str = "cuda", capability: tuple[int, int] = (9, 0),
             sdpa_backends: tuple[str, ...] = ("flash", "efficient", "math"),
             int8_outliers: Mapping[str, Mapping[int, int]] | None = None) -> SimResult:
    """Peak memory of `generate()` (or one forward of an encoder) for this exact configuration, from a run of the
    real model class on meta tensors. `seq_len` is the final length (prompt + new tokens), `padded` whether the
    batch carries a padding mask, `device`/`capability`/`sdpa_backends` the target SDPA picks its kernel for.

    `int8_outliers` is data the meta run cannot see: for bitsandbytes 8-bit, the number of input columns holding a
    value of magnitude >= 6.0 (LLM.int8's outliers, computed in higher precision), by module name and by the
    matmul's rows (tokens x batch): {"model.layers.0.mlp.down_proj": {4096: 14336, 1: 40}}. None: no outlier
    columns, the case of trained checkpoints, whose outliers sit in a handful of feature dimensions (Dettmers et
    al. 2022, LLM.int8(), section 4) and cost next to nothing. Random-init checkpoints differ: a SwiGLU
    down-projection input of hidden size 4096 exceeds 6.0 in every column of a long prompt (measured on the
    H100, benchmarks/h100_memory.py records the counts per module)."""
    norm = simulation_target(attn=attn, device=device, capability=capability, sdpa_backends=sdpa_backends)
    target = {"device": device, "capability": list(norm["capability"]), "usable": sorted(norm["sdpa_backends"])}
    attn = norm["attn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _quiet(_simulate_cached, json.dumps(config, sort_keys=True), architecture, dtype, attn, quantization,
                      batch, prompt_len, max(seq_len or prompt_len, prompt_len), padded,
                      json.dumps(target, sort_keys=True),
                      json.dumps({k: {str(r): int(n) for r, n in v.items()} for k, v in (int8_outliers or {}).items()},
                                 sort_keys=True))


def _outlier_lookup(table: dict[str, dict[str, int]]) -> Any:
    """(name, rows, in_features) -> outlier columns of that call, from `simulate`'s `int8_outliers` table."""
    if not table:
        return None
    return lambda name, rows, in_features: min(int(table.get(name, {}).get(str(rows), 0)), in_features)


def _quiet(fn: Any, *args: Any) -> Any:
    """Run without transformers' deprecation logging: the simulation passes the arguments generate() passes."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return fn(*args)
    finally:
        hf_logging.set_verbosity(level)


def simulate_config(path: str, **kwargs: Any) -> SimResult:
    """`simulate` for a saved model folder or config.json."""
    from pathlib import Path

    file = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
    config = json.loads(file.read_text())
    return simulate(config, architecture=(config.get("architectures") or [None])[0], **kwargs)
