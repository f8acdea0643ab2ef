"""Child process of `advisor smoke --runtime onnxruntime`: export, load with ORTModel*, run, compare.

Reads one JSON request on stdin, prints one JSON line on stdout (everything libraries print goes to
stderr). Runs in a child so a crash in the exporter or in ONNX Runtime is a failed result, not ours.
The PyTorch reference is the same checkpoint in float32 with eager attention, fed the same token ids.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

__all__ = ["PROVIDER_PREFERENCE", "best_provider", "main"]

# NOTE: TensorRT is left out on purpose: its provider builds an engine per shape on first use (minutes) and
# needs TensorRT's own libraries; CUDA is the fastest provider that works out of the box.
PROVIDER_PREFERENCE = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider")


def best_provider(available: list[str]) -> str:
    return next((p for p in PROVIDER_PREFERENCE if p in available), "CPUExecutionProvider")


def _inputs(request: dict[str, Any], vocab: int) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, max(vocab, 5), (request["batch"], request["seq_len"]), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if request["is_encoder_decoder"]:
        inputs["decoder_input_ids"] = ids[:, :4]
    return inputs


def _output(out: Any) -> Any:
    import torch

    value = getattr(out, "logits", None)
    if value is None:
        value = getattr(out, "last_hidden_state", None)
    if value is None:
        value = out[0]
    return torch.as_tensor(value).float()


def run(request: dict[str, Any], result: dict[str, Any]) -> None:
    import onnxruntime
    import torch
    import transformers
    from optimum import onnxruntime as ort_models
    from optimum.exporters.onnx import main_export

    result["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                          "onnxruntime": onnxruntime.__version__}
    available = list(onnxruntime.get_available_providers())
    provider = best_provider(available)
    result.update(providers_available=available, provider=provider)

    result["stage"] = "reference"
    auto = getattr(transformers, request["auto_class"])
    reference = auto.from_pretrained(request["path"], dtype=torch.float32, attn_implementation="eager").eval()
    inputs = _inputs(request, int(getattr(reference.config, "vocab_size", 1000) or 1000))
    with torch.no_grad():
        expected = _output(reference(**inputs))

    result["stage"] = "export"
    started = time.perf_counter()
    main_export(request["path"], output=request["output"], task=request["task"], device="cpu", do_validation=False)
    result["export_seconds"] = round(time.perf_counter() - started, 3)

    result["stage"] = "load"
    ort_class = getattr(ort_models, request["ort_class"])
    extra = {"use_cache": False} if request["ort_class"] == "ORTModelForCausalLM" else {}
    started = time.perf_counter()
    model = ort_class.from_pretrained(request["output"], provider=provider, **extra)
    result["load_seconds"] = round(time.perf_counter() - started, 3)
    session_providers = model.providers if hasattr(model, "providers") else None
    if session_providers:
        result["session_providers"] = list(session_providers)

    result["stage"] = "run"
    got = _output(model(**inputs))  # first call: warm-up
    timings = []
    for _ in range(request["repeats"]):
        started = time.perf_counter()
        got = _output(model(**inputs))
        timings.append(time.perf_counter() - started)
    result["latency_ms"] = round(1000 * statistics.median(timings), 3)
    if got.shape != expected.shape:
        raise RuntimeError(f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
    diff = (got - expected).abs().max().item()
    result["max_abs_diff"] = diff
    result["reference_max_abs"] = expected.abs().max().item()
    result["inputs"] = {k: list(v.shape) for k, v in inputs.items()}
    result["ok"] = True


def main() -> int:
    from advisor.isolation.lifeline import bind_to_parent

    bind_to_parent()  # first: die with the advisor even if it is SIGKILLed (issue 25, as the other workers)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # libraries print freely; stdout carries only the result line
    request = json.loads(sys.stdin.read())
    result: dict[str, Any] = {"ok": False, "error": None, "stage": "start"}
    try:
        run(request, result)
    except BaseException as exc:  # noqa: BLE001 - any failure is the result, never a traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result["ok"], result["error"] = False, f"{result['stage']}: {type(exc).__name__}: {message}"[:500]
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
