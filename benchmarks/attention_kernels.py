#!/usr/bin/env python3
"""Every attention kernel that runs, timed side by side on one GPU (issue 29): sdpa, flash_attention_4 and
flex_attention, in bfloat16 and float16, at prefill 1 x 2048 and batched decode 16 x 512 + 32 new tokens.

Usage (GPU machine, repository root; flash-attn-4 installed as docs/gpu/flash-attn-4.md describes):

    python benchmarks/attention_kernels.py OUT --phase compile         # flex_attention's first calls, 4 at a time
    python benchmarks/attention_kernels.py OUT --phase measure [--only NAME ...] [--dtypes bfloat16 float16]
    python benchmarks/attention_kernels.py --merge OUT ... -o docs/gpu/attention-kernels/attention-kernels.json

Each (model, dtype) runs in its own child: the model is built on the GPU from its config with random weights
(nothing downloaded), cut to LAYERS layers (the depth check of data/measurements/h100.json kept the ranking at 4 of
32 layers), then for each implementation `model.set_attn_implementation(impl)` switches the same weights, and per
workload the first call is timed apart (flex_attention compiles there; flash-attn-4 JIT-compiles its CuTe kernel),
then 0.5 s of warm-up, then the median of 3 timed runs (the definitions of advisor/bench_worker.py: prefill tokens/s
= prompt tokens / forward time; decode tokens/s = batch x (new - 1) / (generate time - first-token time)).
An implementation the class or the release refuses is a row with the reason. `--phase compile` runs each child with
flex_attention only, several at once, so the measuring children find inductor's caches warm: their first call is
then the cost of a cache hit, and the cold compile time is the compile phase's first call (under parallel load).
Only torch and transformers are imported: the script measures, and `--merge` writes the rows; matching them to
the advisor's keys happens where the advisor runs (benchmarks/merge_attention_kernels.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYERS = 4
IMPLS = ("sdpa", "flash_attention_4", "flex_attention")
PREFILL = {"batch": 1, "prompt": 2048, "new_tokens": 1}
DECODE = {"batch": 16, "prompt": 512, "new_tokens": 32, "mixed": True}
DEVICE = os.environ.get("DEVICE", "cuda")  # DEVICE=cpu SMALL=1: a dry run of every step on a CPU box
if os.environ.get("SMALL"):
    LAYERS, PREFILL, DECODE = 1, {**PREFILL, "prompt": 64}, {**DECODE, "batch": 2, "prompt": 32, "new_tokens": 4}

# Model types where FlashAttention applies that no shipped model covers: published shapes, cut to LAYERS.
EXTRA: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-8B": {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 4096,
                      "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
                      "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
                      "max_position_embeddings": 40960, "rope_theta": 1000000.0},
    "microsoft/Phi-3-mini-4k-instruct": {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
                                         "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
                                         "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
                                         "max_position_embeddings": 4096, "pad_token_id": 32000},
    "bigcode/starcoder2-3b": {"model_type": "starcoder2", "architectures": ["Starcoder2ForCausalLM"],
                              "hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 30,
                              "num_attention_heads": 24, "num_key_value_heads": 2, "vocab_size": 49152,
                              "sliding_window": 4096, "max_position_embeddings": 16384, "use_bias": True},
    "allenai/OLMo-2-1124-7B": {"model_type": "olmo2", "architectures": ["Olmo2ForCausalLM"], "hidden_size": 4096,
                               "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                               "num_key_value_heads": 32, "vocab_size": 100352, "max_position_embeddings": 4096},
    "ibm-granite/granite-3.0-8b-base": {"model_type": "granite", "architectures": ["GraniteForCausalLM"],
                                        "hidden_size": 4096, "intermediate_size": 12800, "num_hidden_layers": 40,
                                        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 49155,
                                        "max_position_embeddings": 4096, "embedding_multiplier": 12.0,
                                        "logits_scaling": 16.0, "residual_multiplier": 0.22,
                                        "attention_multiplier": 0.0078125},
}
# Every shipped model type and the extras, in both dtypes; float16 in the order a short device call should take
# them (the types flex_attention runs on first, then the rest)
BF16 = ["meta-llama/Meta-Llama-3-8B", "mistralai/Mistral-7B-v0.1", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen2-7B",
        "google/gemma-7b", "tiiuae/falcon-7b", "facebook/opt-350m", "openai-community/gpt2", "openai/whisper-small",
        "google-bert/bert-base-uncased", "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "google-t5/t5-base", "bigscience/bloom-560m", *EXTRA]
# flex_attention's compiles cost 15-30 s per shape: timed on these models, the rest sdpa and FA4 only
FLEX_MODELS = ("meta-llama/Meta-Llama-3-8B", "mistralai/Mistral-7B-v0.1", "Qwen/Qwen2-7B", "google/gemma-7b",
               "openai/whisper-small", "google-bert/bert-base-uncased", "Qwen/Qwen3-8B",
               "microsoft/Phi-3-mini-4k-instruct", "allenai/OLMo-2-1124-7B", "ibm-granite/granite-3.0-8b-base",
               "bigcode/starcoder2-3b")
FP16 = [*FLEX_MODELS, *(n for n in BF16 if n not in FLEX_MODELS)]
FLEX = {(n, d) for n in FLEX_MODELS for d in ("bfloat16", "float16")}


def config_of(name: str) -> dict[str, Any]:
    """The model's config.json as shipped in data/models/, or an EXTRA shape."""
    if name in EXTRA:
        return dict(EXTRA[name])
    for path in (ROOT / "data" / "models").glob("*.json"):
        shipped = json.loads(path.read_text(encoding="utf-8"))
        if shipped.get("hub_id") == name:
            return dict(shipped["config"])
    raise SystemExit(f"no config for {name}")


# -- the child ------------------------------------------------------------------------------------------------------


def _sync(torch: Any) -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _median(torch: Any, fn: Any, repeats: int = 3, warm_s: float = 0.5) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < warm_s:
        fn()
        _sync(torch)
    times = []
    for _ in range(repeats):
        _sync(torch)
        t0 = time.perf_counter()
        fn()
        _sync(torch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _first(torch: Any, fn: Any) -> float:
    _sync(torch)
    t0 = time.perf_counter()
    fn()
    _sync(torch)
    return time.perf_counter() - t0


def _build(torch: Any, transformers: Any, config: dict[str, Any], dtype: Any) -> tuple[Any, bool]:
    config = dict(config)
    model_type = config.pop("model_type")
    architecture = (config.pop("architectures", None) or [None])[0]
    for key in ("num_hidden_layers", "n_layer", "num_layers", "num_decoder_layers", "decoder_layers",
                "encoder_layers", "n_layers"):
        if isinstance(config.get(key), int):
            config[key] = min(config[key], LAYERS)
    for key in ("transformers_version", "_name_or_path", "torch_dtype", "dtype", "quantization_config"):
        config.pop(key, None)
    hf = transformers.AutoConfig.for_model(model_type, **config)
    cls = getattr(transformers, architecture)
    hf._attn_implementation = "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = cls._from_config(hf, dtype=dtype).eval()
    generative = architecture.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))
    return model, generative


def _inputs(torch: Any, model: Any, spec: dict[str, Any], positions: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    config = model.config
    batch, length = spec["batch"], min(spec["prompt"], positions)
    vocab = int(getattr(config.get_text_config(), "vocab_size", 1000))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(vocab - 1, 4), (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    if spec.get("mixed") and batch > 1:
        for row in range(batch):
            keep = max(1, length // 8 + (length - length // 8) * row // (batch - 1))
            mask[row, : length - keep] = 0
            ids[row, : length - keep] = 0
    ids, mask = ids.to(DEVICE), mask.to(DEVICE)
    decoder = ({"decoder_input_ids": torch.full((batch, 1), int(getattr(config, "decoder_start_token_id", 0) or 0),
                                                dtype=torch.long, device=DEVICE)}
               if getattr(config, "is_encoder_decoder", False) else {})
    if getattr(model, "main_input_name", "input_ids") == "input_features":
        frames = 2 * int(getattr(config, "max_source_positions", 1500))
        features = torch.randn(batch, int(config.num_mel_bins), frames, generator=gen).to(DEVICE, model.dtype)
        return {"input_features": features, **decoder}, {"input_features": features}, batch * frames // 2
    return ({"input_ids": ids, "attention_mask": mask, **decoder}, {"inputs": ids, "attention_mask": mask},
            int(mask.sum()))


def child(request: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    dtype = getattr(torch, request["dtype"])
    out: dict[str, Any] = {"name": request["name"], "dtype": request["dtype"], "layers": LAYERS, "rows": []}
    t0 = time.perf_counter()
    model, generative = _build(torch, transformers, request["config"], dtype)
    out["build_seconds"] = time.perf_counter() - t0
    config = model.config.get_text_config()
    positions = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
                    or 1 << 30)
    if getattr(model.config, "model_type", "") == "whisper":
        positions = int(model.config.max_target_positions)
    for impl in request["impls"]:
        row: dict[str, Any] = {"attn": impl}
        try:
            model.set_attn_implementation(impl)
        except Exception as exc:  # noqa: BLE001 - the class or the release refuses it: a row with the reason
            row["refused"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            out["rows"].append(row)
            continue
        row["set_to"] = str(getattr(model.config, "_attn_implementation", impl))
        for name, spec in (("prefill", PREFILL), ("batch", DECODE)):
            try:
                forward_kwargs, generate_kwargs, tokens = _inputs(torch, model, spec, positions)
                if DEVICE == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    if generative and spec["new_tokens"] > 1:
                        common = {**generate_kwargs, "do_sample": False, "num_beams": 1, "pad_token_id": 0}
                        first = lambda: model.generate(max_new_tokens=1, min_new_tokens=1, **common)  # noqa: E731
                        new = spec["new_tokens"]
                        full = lambda: model.generate(max_new_tokens=new, min_new_tokens=new, **common)  # noqa: E731
                        first_call = _first(torch, full)
                        ttft = _median(torch, first)
                        total = _median(torch, full)
                        result = {"decode_tokens_per_second": spec["batch"] * (new - 1) / max(total - ttft, 1e-9),
                                  "prefill_tokens_per_second": tokens / ttft, "ttft_ms": ttft * 1000}
                    else:
                        forward = lambda: model(**forward_kwargs)  # noqa: E731
                        first_call = _first(torch, forward)
                        seconds = _median(torch, forward)
                        result = {"prefill_tokens_per_second": tokens / seconds, "ttft_ms": seconds * 1000}
                result["first_call_seconds"] = first_call
                if DEVICE == "cuda":
                    result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
                result["prompt"] = min(spec["prompt"], positions)
            except Exception as exc:  # noqa: BLE001 - one workload's failure is its row
                result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
            row[name] = result
        out["rows"].append(row)
        print(json.dumps({"name": request["name"], "dtype": request["dtype"], **row}), file=sys.stderr, flush=True)
    return out


# -- the parent -----------------------------------------------------------------------------------------------------


def _run_child(name: str, dtype: str, impls: tuple[str, ...], timeout: float) -> dict[str, Any]:
    request = {"name": name, "dtype": dtype, "impls": list(impls), "config": config_of(name)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"name": name, "dtype": dtype, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"name": name, "dtype": dtype,
                                                   "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result["wall_seconds"] = time.perf_counter() - t0
    return result


def _environment() -> dict[str, Any]:
    import torch
    import transformers

    cuda = DEVICE == "cuda"
    driver = None
    if cuda:  # the advisor's key has the driver (benchmarks/merge_attention_kernels.py); nvidia-smi says it
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=20, check=False).stdout.split()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = None
    found: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if cuda else "cpu", "driver": driver,
                             "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
                             "torch": torch.__version__, "transformers": transformers.__version__}
    try:
        from importlib import metadata

        found["flash-attn-4"] = metadata.version("flash-attn-4")
        found["nvidia-cutlass-dsl"] = metadata.version("nvidia-cutlass-dsl")
    except Exception as exc:  # noqa: BLE001
        found["flash-attn-4"] = f"not installed ({exc})"
    from transformers.utils import is_flash_attn_4_available  # type: ignore[attr-defined]

    found["is_flash_attn_4_available"] = bool(is_flash_attn_4_available())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("compile", "measure"), default="measure")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--dtypes", nargs="*", default=["bfloat16", "float16"])
    parser.add_argument("--deadline", type=float, default=480.0, help="no child starts after this many seconds")
    parser.add_argument("--parallel", type=int, default=5, help="children at once in the compile phase")
    parser.add_argument("--merge", nargs="*", type=Path, help="measure-phase JSON files to merge")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        merged = {"schema": "advisor-attention-kernels/1", "runs": runs}
        (args.output or Path("attention-kernels.json")).write_text(json.dumps(merged, indent=1) + "\n")
        return
    assert args.out is not None, "OUT is required"
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("USE_HUB_KERNELS", "0")  # transformers 5.25 would kernelize; this times attention only
    pairs = [(n, d) for d in args.dtypes for n in (BF16 if d == "bfloat16" else FP16)
             if not args.only or n in args.only]
    start = time.perf_counter()
    result: dict[str, Any] = {"phase": args.phase, "environment": _environment(), "layers": LAYERS,
                              "workloads": {"prefill": PREFILL, "batch": DECODE}, "children": [], "skipped": []}
    path = args.out / f"attention-kernels-{args.phase}.json"
    if args.phase == "compile":
        flex = [p for p in pairs if p in FLEX]
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            result["children"] = list(pool.map(lambda p: _run_child(p[0], p[1], ("flex_attention",), 300), flex))
    else:
        for name, dtype in pairs:
            if time.perf_counter() - start > args.deadline:
                result["skipped"].append([name, dtype])
                continue
            impls = IMPLS if (name, dtype) in FLEX else tuple(i for i in IMPLS if i != "flex_attention")
            result["children"].append(_run_child(name, dtype, impls, 240))
            path.write_text(json.dumps(result, indent=1) + "\n")  # a call cut short keeps what it measured
    result["elapsed_seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.phase}: {len(result['children'])} children in {result['elapsed_seconds']:.0f} s, "
          f"{len(result['skipped'])} skipped -> {path}")


if __name__ == "__main__":
    main()
