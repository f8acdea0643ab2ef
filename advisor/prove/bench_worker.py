"""Child process of `advisor bench`: load one configuration and time the workloads asked for.

Reads a JSON request on stdin, writes one JSON line on stdout. Runs in its own process so a crash,
OOM or hang costs one candidate, and device memory is released before the next one.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from advisor.isolation.lifeline import bind_to_parent


def _sync(torch: Any) -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _inputs(torch: Any, spec: dict[str, Any], vocab: int, device: str) -> tuple[Any, Any]:
    """Random token ids; with `mixed`, prompt lengths spread from 1/8 to the full length, left-padded."""
    batch, length = int(spec["batch"]), int(spec["prompt"])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(vocab - 1, 4), (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    if spec.get("mixed") and batch > 1:
        for row in range(batch):
            keep = max(1, length // 8 + (length - length // 8) * row // (batch - 1))
            mask[row, : length - keep] = 0
            ids[row, : length - keep] = 0
    return ids.to(device), mask.to(device)


def _model_inputs(torch: Any, model: Any, ids: Any, mask: Any) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Forward kwargs, generate() kwargs and the prompt token count for this model's modality: an encoder-decoder
    forward needs decoder ids; a speech model (whisper) reads log-mel features, not token ids."""
    config = model.config
    batch = ids.shape[0]
    start = getattr(config, "decoder_start_token_id", None)
    decoder = ({"decoder_input_ids": torch.full((batch, 1), int(start or 0), dtype=torch.long, device=ids.device)}
               if getattr(config, "is_encoder_decoder", False) else {})
    if getattr(model, "main_input_name", "input_ids") == "input_features":
        frames = 2 * int(getattr(config, "max_source_positions", 1500))
        gen = torch.Generator().manual_seed(0)
        features = torch.randn(batch, int(config.num_mel_bins), frames, generator=gen).to(ids.device, model.dtype)
        return {"input_features": features, **decoder}, {"input_features": features}, batch * frames // 2
    return {"input_ids": ids, "attention_mask": mask, **decoder}, {"inputs": ids, "attention_mask": mask}, int(mask.sum())


WARM_SECONDS = 1.0
TIMED_BUDGET_SECONDS = 8.0  # issue 27: advisor/prove/tune_cost.py models both


def _warm(torch: Any, fn: Any, seconds: float = WARM_SECONDS) -> None:
    """Run `fn` for at least `seconds`, not once: kernel selection, allocator growth and clock ramp-up all land
    here rather than in the timed runs (and flex_attention compiles)."""
    start = time.perf_counter()
    for _ in range(1000):
        fn()
        _sync(torch)
        if time.perf_counter() - start >= seconds:
            return


def _timed(torch: Any, fn: Any, repeats: int, budget: float = TIMED_BUDGET_SECONDS,
           samples: list[float] | None = None) -> float:
    """Median of `repeats` runs; past `budget` seconds a slow configuration stops at three (as timeit's autorange
    bounds its effort), so an 8-bit decode does not take the time the fast, noisy candidates need."""
    times: list[float] = []
    while len(times) < repeats and (len(times) < min(3, repeats) or sum(times) < budget):
        _sync(torch)
        start = time.perf_counter()
        fn()
        _sync(torch)
        times.append(time.perf_counter() - start)
    if samples is not None:  # issue 12: tune reports the spread between repeats
        samples.extend(times)
    return statistics.median(times)


def run(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers

    from advisor.model.remote_code import child_kwargs
    from advisor.plan.emit import to_kwargs

    result: dict[str, Any] = {"ok": False, "error": None}
    if torch.cuda.is_available():
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    auto = getattr(transformers, request["auto_class"])
    start = time.perf_counter()
    # only the user's flag (a bool from the parent) may enable remote code (advisor/model/remote_code.py)
    kwargs = child_kwargs(request["from_pretrained"], trust_remote_code=request.get("trust_remote_code") is True)
    if request.get("random_config") is not None:  # issue 12: `advisor tune` times random weights built on the device
        from advisor.prove.random_model import build_random

        model = build_random(torch, transformers, auto, request["random_config"], to_kwargs(kwargs),
                             request.get("layers")).eval()
    else:
        model = auto.from_pretrained(request["path"], **to_kwargs(kwargs)).eval()
    result["load_seconds"] = time.perf_counter() - start
    if request["from_pretrained"].get("quantization_config"):  # proof that it took effect (issue 17)
        from advisor.prove.quant_proof import count_quantized, not_applied

        result["quantization"] = count = count_quantized(model)
        if (reason := not_applied(count)) is not None:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
            result["error"] = reason
            return result
    device = str(model.device)
    vocab = int(getattr(model.config.get_text_config(), "vocab_size", 1000))
    repeats = int(request.get("repeats", 3))
    workloads: dict[str, Any] = {}
    for name, spec in request["workloads"].items():
        ids, mask = _inputs(torch, spec, vocab, device)
        forward_kwargs, generate_kwargs, tokens = _model_inputs(torch, model, ids, mask)
        new = int(spec.get("new_tokens", 0))
        out: dict[str, Any] = {}
        on_gpu = torch.cuda.is_available() and torch.cuda.is_initialized()
        if on_gpu:  # the weights stay allocated, so each workload's peak includes them
            torch.cuda.reset_peak_memory_stats()
        begin = time.perf_counter()
        with torch.inference_mode():
            if request["generative"] and new > 1:
                common = {**generate_kwargs, "do_sample": False, "num_beams": 1, "pad_token_id": 0}
                first = lambda: model.generate(max_new_tokens=1, min_new_tokens=1, **common)  # noqa: E731
                full = lambda: model.generate(max_new_tokens=new, min_new_tokens=new, **common)  # noqa: E731
                _warm(torch, first)
                _warm(torch, full)
                ttft = _timed(torch, first, repeats)
                times: list[float] = []
                total = _timed(torch, full, repeats, samples=times)
                out["repeat_spread"] = (max(times) - min(times)) / max(times)
                out["ttft_ms"] = ttft * 1000
                out["prefill_tokens_per_second"] = tokens / ttft
                out["decode_tokens_per_second"] = decode_rate(ids.shape[0] * (new - 1), total, ttft)
                if out["decode_tokens_per_second"] is None:
                    out["too_short"] = ["decode_tokens_per_second"]
            else:
                forward = lambda: model(**forward_kwargs)  # noqa: E731
                _warm(torch, forward)
                times = []
                seconds = _timed(torch, forward, repeats, samples=times)
                out["repeat_spread"] = (max(times) - min(times)) / max(times)
                out["ttft_ms"] = seconds * 1000
                out["prefill_tokens_per_second"] = tokens / seconds
        out["run_seconds"] = time.perf_counter() - begin  # issue 27: warm-ups, a compile, repeats (tune's cost)
        if on_gpu:
            out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        workloads[name] = out
    result["workloads"] = workloads
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    result["ok"] = True
    return result


MIN_TIMED = 1e-6  # seconds: a difference of two medians below this is not a duration perf_counter measured


def decode_rate(tokens: int, total: float, first: float) -> float | None:
    """Decode tokens per second from the median full generation and the median first token; None where the
    difference is too short to time (issue 31: max(difference, 1e-9) reported 999999999.99 tok/s)."""
    decode = total - first
    return tokens / decode if decode > MIN_TIMED else None


def main() -> None:
    bind_to_parent()  # first: die with the advisor even if it is SIGKILLed (issue 15)
    request = json.loads(sys.stdin.read())
    if request.get("cpus"):  # before torch starts its threads, so they inherit it
        os.sched_setaffinity(0, request["cpus"])
    try:
        result = run(request)
    except BaseException as exc:  # noqa: BLE001 - the failure is this candidate's result
        text = str(exc).strip().splitlines()
        result = {"ok": False, "error": f"{type(exc).__name__}: {text[0] if text else ''}"[:400]}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
