"""The smoke test's child process: load one configuration, run it, measure it, compare it, report one line.

Run as `python -m advisor.prove.smoke_worker`; it reads one JSON request from stdin and writes one JSON result
line to stdout. It runs in its own process so that a segfault, a CUDA error, an OOM or a hang in a kernel
ends this child and not the advisor (the parent turns the exit status into the attempt's error), and so
that the device memory of one attempt is freed before the next one starts.

Two roles:
- `reference`: the same weights in float32 with eager attention; builds the inputs, runs one forward pass
  and saves inputs, output and mask to `reference_file` (torch.save) for the attempts to reuse.
- `attempt`: loads with the candidate's from_pretrained kwargs, runs the forward pass on the reference's
  inputs (a warm-up, then the median of a few timed runs), a short greedy `generate` for generative
  models, and compares its output with the reference over the non-padded positions, in float32.

Tolerances (`TOLERANCES`): the allowed max |output - reference| is `max(atol, rtol * max|reference|)`,
keyed by the quantization when there is one, else by the dtype the model loaded in. They are meant to
catch broken kernels, masks or weights (errors of the order of the outputs themselves, or NaN), not to
rank precision: float32 differs from the reference only by the order of summation (1e-3 relative);
float16 keeps 10 mantissa bits (~5e-4 per op) and bfloat16 8 bits (~4e-3 per op), and rounding
compounds over the layers (0.05 and 0.1 relative); LLM.int8 (outliers kept in fp16) 0.25 and NF4 0.5.

Test hook: ADVISOR_SMOKE_FAULT=KIND[@WHICH][,KIND@WHICH...] forces a failure, before anything heavy is
imported. KIND is `crash` (the child kills itself with SIGSEGV), `hang` (sleeps until the timeout),
`raise` (a Python exception) or `oom` (an exception worded like torch's CUDA OOM). WHICH is the attempt's
0-based index in the run, or `reference`; without it every attempt (never the reference) fails.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from typing import Any

from advisor import env as envvars
from advisor.isolation.lifeline import bind_to_parent
from advisor.model.spec import TOKENIZER_FILES, has_tokenizer

__all__ = [
    "TOLERANCES", "FAULT_ENV", "TOKENIZER_FILES", "CheckFailed", "has_tokenizer", "tolerance_key", "tolerance_for",
    "compare_outputs", "main",
]

FAULT_ENV = envvars.SMOKE_FAULT

# (atol, rtol): allowed max |diff| = max(atol, rtol * max|reference|); see the module docstring for why.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-3, 1e-3),
    "float16": (5e-2, 5e-2),
    "bfloat16": (1e-1, 1e-1),
    "8bit": (2.5e-1, 2.5e-1),
    "4bit": (5e-1, 5e-1),
}

TIMED_RUNS = 3
PROMPT = (
    "the quick brown fox jumps over the lazy dog because it was a warm day and the dog was asleep in "
    "the sun while the fox looked for something to eat in the tall grass near the old wooden fence"
).split()




def tolerance_key(from_pretrained: dict[str, Any], loaded_dtype: str) -> str:
    """Quantization decides the error budget when there is one; otherwise the dtype the weights loaded in."""
    quant = from_pretrained.get("quantization_config")
    if isinstance(quant, dict):
        if quant.get("load_in_4bit"):
            return "4bit"
        if quant.get("load_in_8bit"):
            return "8bit"
        from advisor.knowledge.quant_methods import (
            load_methods,  # another method: the budget of its bit width
        )

        for m in load_methods():
            if m.candidate and m.candidate.quantization_config.get("quant_method") == quant.get("quant_method"):
                return "4bit" if m.candidate.bits == 4 else "8bit"
    return loaded_dtype if loaded_dtype in TOLERANCES else "float32"


def tolerance_for(key: str, reference_max_abs: float) -> float:
    atol, rtol = TOLERANCES[key]
    return max(atol, rtol * reference_max_abs)


def _faults() -> dict[str, str]:
    """`which -> kind` from ADVISOR_SMOKE_FAULT; `*` means every attempt."""
    spec = (envvars.read(FAULT_ENV) or "").strip()
    faults: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, which = item.partition("@")
        faults[which.strip() or "*"] = kind.strip().lower()
    return faults


def _fault_for(request: dict[str, Any]) -> str | None:
    faults = _faults()
    if request["role"] == "reference":
        return faults.get("reference")
    return faults.get(str(request.get("index")), faults.get("*"))


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_error(exc: BaseException, stage: str) -> str:
    """One line: the stage, and the cause in words a user can act on (OOM and CUDA errors named as such)."""
    message = _one_line(str(exc)) or type(exc).__name__
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in message.lower():
        return f"out of memory during {stage}: {message}"
    if "CUDA error" in message or name == "AcceleratorError":
        return f"CUDA error during {stage}: {message}"
    return f"{stage} failed: {name}: {message}"


class CheckFailed(Exception):
    """A check that failed with a message meant for the user as is."""


# ---------------------------------------------------------------------------------------------- helpers
# Everything below imports torch / transformers lazily: a faulted child must never pay for them.


def _sync(torch: Any, device: str) -> None:
    """Wait for every GPU the model spans, so that timings measure the work and not its launch."""
    if "cuda" in device:
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)


def _device_of(model: Any) -> str:
    """Where the model lives, for the report: `cuda:0`, `cpu`, or every device a device_map spread it over."""
    devices = {str(d) for d in getattr(model, "hf_device_map", {}).values() if str(d) not in ("disk",)}
    if len(devices) > 1:
        named = sorted(f"cuda:{d}" if str(d).isdigit() else str(d) for d in devices)
        return ",".join(named)
    return str(model.device)


def _build_inputs(request: dict[str, Any], model: Any, torch: Any) -> tuple[dict[str, Any], str]:
    """A padded batch: real prompts through the folder's tokenizer when it loads, else synthetic ids."""
    batch, seq_len = int(request["batch"]), int(request["seq_len"])
    decoder_only = bool(request["generative"]) and not bool(request["is_encoder_decoder"])
    side = "left" if decoder_only else "right"
    vocab = int(model.get_input_embeddings().num_embeddings)
    config = model.config
    pad = getattr(config, "pad_token_id", None)
    why = ""
    inputs: dict[str, Any] | None = None
    tokenizer = None
    if not has_tokenizer(request["path"]):
        why = "the folder has no tokenizer"
    else:
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(request["path"], trust_remote_code=request["trust_remote_code"] is True)
        except Exception as exc:
            why = f"its tokenizer does not load: {type(exc).__name__}"
    if tokenizer is not None:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token is None:
            why = "the tokenizer has no pad, eos or unk token"
        else:
            tokenizer.padding_side = side
            # the first prompt fills seq_len, the last has two words: every row but the first is padded
            lengths = [max(2, seq_len * (batch - 1 - i) // (batch - 1)) for i in range(batch)] if batch > 1 else [seq_len]
            prompts = [" ".join((PROMPT * (1 + n // len(PROMPT)))[:n]) for n in lengths]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=seq_len)
            ids, mask = enc["input_ids"], enc["attention_mask"]
            if int(ids.max()) >= vocab:
                why = f"the tokenizer's ids reach {int(ids.max())}, beyond the model's vocabulary of {vocab}"
            elif batch > 1 and bool((mask.sum(dim=1) == mask.shape[1]).all()):
                why = "the tokenized prompts came out the same length, so padding would not be exercised"
            else:
                inputs = {"input_ids": ids, "attention_mask": mask}
                source = f"{batch} prompts from the model's tokenizer, {side}-padded"
                pad = tokenizer.pad_token_id
    if inputs is None:
        generator = torch.Generator().manual_seed(0)
        low = min(10, max(vocab - 1, 0))
        ids = torch.randint(low, vocab, (batch, seq_len), generator=generator)
        mask = torch.ones(batch, seq_len, dtype=torch.long)
        for row in range(1, batch):
            n_pad = max(1, seq_len * row // batch)
            span = slice(0, n_pad) if side == "left" else slice(seq_len - n_pad, seq_len)
            mask[row, span] = 0
            ids[row, span] = pad if pad is not None else 0
        inputs = {"input_ids": ids, "attention_mask": mask}
        source = f"synthetic token ids ({why}), {side}-padded" if why else f"synthetic token ids, {side}-padded"
    if request["is_encoder_decoder"]:
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            start = getattr(getattr(model, "generation_config", None), "decoder_start_token_id", None)
        if start is None:
            start = pad if pad is not None else 0
        head = inputs["input_ids"][0:1, : min(3, seq_len)].expand(batch, -1)
        inputs["decoder_input_ids"] = torch.cat([torch.full((batch, 1), int(start), dtype=torch.long), head], dim=1)
    inputs["pad_token_id"] = torch.tensor(pad if pad is not None else -1)
    return inputs, source


def _model_inputs(inputs: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) for k, v in inputs.items() if k != "pad_token_id"}


def _main_output(output: Any, torch: Any) -> Any:
    """The tensor to compare: logits when the head has them, else the last hidden state."""
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    values = output.to_tuple() if hasattr(output, "to_tuple") else output
    for value in values if isinstance(values, (tuple, list)) else (values,):
        if isinstance(value, torch.Tensor):
            return value
    raise CheckFailed("the forward pass returned no tensor to compare")


def _valid_positions(output: Any, inputs: dict[str, Any]) -> Any:
    """The output at non-padded positions (padding positions may hold anything, even NaN).

    Only a per-token output (batch, tokens, features) of the encoder or decoder-only model is masked;
    a seq2seq decoder's logits or a per-sequence head (batch, classes) has no padding to skip.
    """
    mask = inputs["attention_mask"]
    if "decoder_input_ids" not in inputs and output.dim() >= 3 and tuple(output.shape[:2]) == tuple(mask.shape):
        return output[mask.bool().to(output.device)]
    return output


def _forward(model: Any, inputs: dict[str, Any], torch: Any) -> Any:
    with torch.inference_mode():
        return _main_output(model(**inputs), torch)


def _load(request: dict[str, Any], from_pretrained: dict[str, Any], torch: Any) -> tuple[Any, float]:
    import transformers

    from advisor.model.remote_code import child_kwargs
    from advisor.plan.emit import to_kwargs

    cls = getattr(transformers, request["auto_class"])
    # only the user's flag, carried by the parent as a bool, may enable remote code (advisor/model/remote_code.py)
    kwargs = to_kwargs(child_kwargs(from_pretrained, trust_remote_code=request["trust_remote_code"] is True))
    try:  # import the model's module now, so that load_seconds measures loading and not importing
        getattr(transformers, request.get("architecture") or "", None)
    except Exception:
        pass
    start = time.perf_counter()
    model = cls.from_pretrained(request["path"], **kwargs)
    model.eval()
    device = _device_of(model)
    _sync(torch, device)
    return model, time.perf_counter() - start


def _peak_memory(result: dict[str, Any], device: str, torch: Any) -> None:
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["host_rss_bytes"] = int(rss if sys.platform == "darwin" else rss * 1024)  # KiB on Linux
    except (ImportError, OSError):
        pass
    # a load that failed has no device yet: then CUDA counts when the attempt got as far as touching it
    on_gpu = torch is not None and ("cuda" in device or (not device and torch.cuda.is_initialized()))
    if on_gpu and torch.cuda.is_available():
        result["peak_memory_bytes"] = sum(int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count()))
    else:
        result["peak_memory_bytes"] = result.get("host_rss_bytes")


def _reset_peaks(torch: Any) -> None:
    if torch.cuda.is_available():
        torch.cuda.init()  # reset_peak_memory_stats before init raises "Invalid device argument"
        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(i)


# ---------------------------------------------------------------------------------------------- roles


def run_reference(request: dict[str, Any], result: dict[str, Any]) -> None:
    """float32 eager once: its inputs (padding mask included) and output go to reference_file for the attempts."""
    result["stage"] = "import"
    import torch

    result["stage"] = "load"
    model, result["load_seconds"] = _load(request, request["from_pretrained"], torch)
    device = result["device"] = _device_of(model)
    result["stage"] = "input preparation"
    inputs, result["inputs"] = _build_inputs(request, model, torch)
    result["stage"] = "forward pass"
    output = _forward(model, _model_inputs(inputs, str(model.device)), torch).float().cpu()
    valid = _valid_positions(output, inputs)
    if not bool(torch.isfinite(valid).all()):
        raise CheckFailed("the float32 eager reference output has NaN or inf: the weights themselves may be broken")
    result["stage"] = "saving the reference"
    torch.save(
        {"inputs": inputs, "output": output, "max_abs": float(valid.abs().max()), "source": result["inputs"]},
        request["reference_file"],
    )
    _peak_memory(result, device, torch)
    result["ok"] = True


def run_attempt(request: dict[str, Any], result: dict[str, Any]) -> None:
    result["stage"] = "import"
    import torch

    reference = None
    if request.get("reference_file"):
        reference = torch.load(request["reference_file"], weights_only=True)
    if request["from_pretrained"].get("device_map"):  # a CPU attempt must not create a CUDA context
        _reset_peaks(torch)
    result["stage"] = "load"
    model, result["load_seconds"] = _load(request, request["from_pretrained"], torch)
    device = result["device"] = _device_of(model)
    _check_quantized(model, request["from_pretrained"], result, device, torch)
    first = str(model.device)  # the first parameter's device: where a device_map puts the embeddings
    result["stage"] = "input preparation"
    if reference is not None:
        inputs, result["inputs"] = reference["inputs"], reference["source"]
    else:
        inputs, result["inputs"] = _build_inputs(request, model, torch)
    live = _model_inputs(inputs, first)

    result["stage"] = "forward pass"
    output = _forward(model, live, torch)  # warm-up (and the output compared below)
    times = []
    for _ in range(TIMED_RUNS):
        _sync(torch, device)
        start = time.perf_counter()
        _forward(model, live, torch)
        _sync(torch, device)
        times.append(time.perf_counter() - start)
    result["latency_ms"] = statistics.median(times) * 1000

    n_new = int(request["generate_tokens"])
    if request["generative"] and n_new > 0:
        result["stage"] = "generate"
        pad = int(inputs["pad_token_id"])
        gen_kwargs: dict[str, Any] = {"max_new_tokens": n_new, "min_new_tokens": n_new, "do_sample": False, "num_beams": 1}
        if pad >= 0:
            gen_kwargs["pad_token_id"] = pad
        gen_inputs = {k: v for k, v in live.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():  # warm-up: the first generate pays for cache set-up and kernel selection
            model.generate(**gen_inputs, **{**gen_kwargs, "max_new_tokens": 2, "min_new_tokens": 2})
        _sync(torch, device)
        start = time.perf_counter()
        with torch.inference_mode():
            generated = model.generate(**gen_inputs, **gen_kwargs)
        _sync(torch, device)
        seconds = time.perf_counter() - start
        prompt = 1 if request["is_encoder_decoder"] else gen_inputs["input_ids"].shape[1]
        result["generated_tokens"] = int((generated.shape[1] - prompt) * generated.shape[0])
        result["tokens_per_second"] = result["generated_tokens"] / seconds if seconds > 0 else None

    _peak_memory(result, device, torch)
    result["stage"] = "comparison"
    key = result["tolerance_key"] = tolerance_key(request["from_pretrained"], str(model.dtype).removeprefix("torch."))
    dequantized = None
    if key in ("8bit", "4bit") and hasattr(model, "dequantize"):  # the quantized weights, dequantized (issue 12)
        result["stage"] = "dequantized comparison"
        try:
            model.dequantize()
        except NotImplementedError:  # quanto, HQQ, FP8: no dequantize in transformers; judged against fp32
            pass
        else:
            dequantized = _forward(model, live, torch)
    compare_outputs(output, reference, inputs, key, result, dequantized=dequantized)
    result["ok"] = True


def _check_quantized(model: Any, from_pretrained: dict[str, Any], result: dict[str, Any], device: str, torch: Any) -> None:
    """A quantized load whose linear weights stayed in float is a failed attempt (issue 17): prove it after load."""
    from advisor.prove.quant_proof import count_quantized, not_applied, requested

    if not requested(from_pretrained):
        if getattr(getattr(model, "config", None), "quantization_config", None) is not None:
            # a pre-quantized checkpoint (QUANT009): recorded, not judged (GPTQ's QuantLinear is no nn.Linear)
            result["quantization"] = count_quantized(model)
        return
    result["quantization"] = count = count_quantized(model)
    reason = not_applied(count)
    if reason is not None:
        _peak_memory(result, device, torch)
        raise CheckFailed(reason)


def compare_outputs(
    output: Any, reference: dict[str, Any] | None, inputs: dict[str, Any], key: str, result: dict[str, Any],
    dequantized: Any = None,
) -> None:
    """Max |output - reference| over the non-padded positions, in float32, against the key's tolerance.

    Fills max_abs_diff and max_abs_diff_tolerance; raises CheckFailed for NaN/inf, a shape change or a
    difference over the tolerance. Without a reference only the finiteness is checked.
    """
    import torch

    got = _valid_positions(output.float().cpu(), inputs)
    if not bool(torch.isfinite(got).all()):
        bad = int((~torch.isfinite(got)).sum())
        raise CheckFailed(f"the output has NaN or inf at {bad} of {got.numel()} non-padded values")
    if reference is None:
        return
    want = _valid_positions(reference["output"], inputs)
    if got.shape != want.shape:
        raise CheckFailed(f"the output's shape {tuple(got.shape)} differs from the reference's {tuple(want.shape)}")
    diff = float((got - want).abs().max()) if got.numel() else 0.0
    tol = tolerance_for(key, float(reference["max_abs"]))
    result["max_abs_diff"], result["max_abs_diff_tolerance"] = diff, tol
    # issue 12: pass/fail by cosine and top-1 agreement (scale-free, so random weights are judged fairly);
    # max |diff| stays in the report (advisor/prove/fidelity.py, docs/smoke-fidelity.md)
    from advisor.prove.fidelity import compare, judge

    metrics = compare(want, got)
    result["cosine"], result["top1_agreement"] = metrics["cosine"], metrics["top1_agreement"]
    if dequantized is not None:  # quantized: judged against its own weights; the fp32 figures are its error
        own = compare(_valid_positions(dequantized.float().cpu(), inputs), got)
        result["dequantized_cosine"], result["dequantized_top1_agreement"] = own["cosine"], own["top1_agreement"]
        if (reason := judge(key, own, dequantized=True)) is not None:
            raise CheckFailed(f"{reason}; against fp32: cosine {metrics['cosine']:.4f}, max |diff| {diff:.3g}")
        return
    if (reason := judge(key, metrics)) is not None:
        raise CheckFailed(f"{reason}; max |diff| {diff:.3g} (max-|diff| tolerance {tol:.3g})")


def main() -> int:
    """Read the request, honour a forced fault, run the role, print exactly one JSON line."""
    bind_to_parent()  # first: die with the advisor even if it is SIGKILLed (issue 15)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # anything a library prints goes to stderr; stdout carries only the result line
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashed 70B model must not leave a core file
    except (ImportError, OSError, ValueError):
        pass
    request = json.loads(sys.stdin.read())
    result: dict[str, Any] = {"ok": False, "error": None, "stage": "start"}
    fault = _fault_for(request)
    if fault == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        while True:
            time.sleep(3600)
    try:
        if fault == "raise":
            raise RuntimeError(f"forced failure ({FAULT_ENV}=raise)")
        if fault == "oom":
            raise RuntimeError(f"CUDA out of memory. Tried to allocate 1.00 GiB (forced by {FAULT_ENV}=oom)")
        if request["role"] == "reference":
            run_reference(request, result)
        else:
            run_attempt(request, result)
    except CheckFailed as exc:
        result["ok"], result["error"] = False, str(exc)
    except BaseException as exc:  # noqa: BLE001 - any failure is the attempt's result, never a traceback
        result["ok"], result["error"] = False, describe_error(exc, result["stage"])
        try:  # the peak up to the failure: what an OOM needed is the useful number
            _peak_memory(result, str(result.get("device") or ""), sys.modules.get("torch"))
        except Exception:
            pass
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
