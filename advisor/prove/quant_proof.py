"""Did quantization take effect? Count the quantized linear weights of a loaded model (issue 17).

transformers loads a "quantized" model without an error even when its bitsandbytes integration replaced
nothing (an `nn.Linear` subclass, fused 3-D experts): the only proof is to look at the loaded weights.
Run inside the smoke and bench children right after `from_pretrained`; imports torch only.

A linear weight is the weight of an `nn.Linear` (subclasses included, so `Linear8bitLt` / `Linear4bit` /
`FP8Linear` count), of a `Conv1D`, or a parameter of three or more dimensions outside those (fused experts).
It is quantized when it is stored in an integer or 8-bit float type, or is a tensor subclass
(bitsandbytes `Int8Params` / `Params4bit`, torchao's quantized tensors). Shares are of the unquantized element
counts (`in_features * out_features` for a packed 4-bit weight), so 4-bit packing does not distort them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["APPLIED_SHARE", "QuantizationCount", "count_quantized", "not_applied", "requested"]

# Below this share of the linear weights' parameters, the attempt failed: the weights did not shrink.
APPLIED_SHARE = 0.6
_PLAIN = ("Parameter", "Tensor", "Buffer")


class QuantizationCount(dict[str, Any]):
    """JSON-ready counts: linear_weights, quantized_weights, quantized_share, weight_bytes, quantized_modules."""


def _logical(module: Any, weight: Any) -> int:
    """Unquantized element count: a packed 4-bit weight's shape is not the layer's."""
    rows, cols = getattr(module, "out_features", None), getattr(module, "in_features", None)
    if isinstance(rows, int) and isinstance(cols, int) and rows * cols > 0:
        return rows * cols
    return int(weight.numel())


def _is_quantized(tensor: Any) -> bool:
    import torch

    if type(tensor).__name__ not in _PLAIN:
        return True  # Int8Params, Params4bit, torchao's AffineQuantizedTensor and kin
    return not (tensor.dtype.is_floating_point and tensor.element_size() >= 2) and tensor.dtype != torch.bool


def count_quantized(model: Any) -> QuantizationCount:
    """Walk the loaded model once; see the module docstring for what counts."""
    from torch import nn

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        Conv1D = nn.Linear  # type: ignore[misc,assignment]
    seen: set[int] = set()
    linear = quantized = 0
    logical_all = logical_quantized = 0
    modules: dict[str, int] = {}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, (nn.Linear, Conv1D)) and weight is not None:
            seen.add(id(weight))
            size = _logical(module, weight)
            linear += 1
            logical_all += size
            if _is_quantized(weight):
                quantized += 1
                logical_quantized += size
                modules[type(module).__name__] = modules.get(type(module).__name__, 0) + 1
            continue
        for param in module.parameters(recurse=False):
            if id(param) in seen or param.dim() < 3:
                continue
            seen.add(id(param))
            linear += 1
            logical_all += int(param.numel())
            if _is_quantized(param):
                quantized += 1
                logical_quantized += int(param.numel())
    weight_bytes = sum(int(p.numel()) * p.element_size() for p in model.parameters())
    weight_bytes += sum(int(b.numel()) * b.element_size() for b in model.buffers())
    return QuantizationCount(
        linear_weights=linear,
        quantized_weights=quantized,
        quantized_share=logical_quantized / logical_all if logical_all else 0.0,
        weight_bytes=weight_bytes,
        quantized_modules=modules,
    )


def requested(from_pretrained: dict[str, Any]) -> bool:
    """Whether the kwargs ask transformers to quantize (any quantization_config)."""
    return bool(from_pretrained.get("quantization_config"))


def not_applied(count: QuantizationCount) -> str | None:
    """The failure reason when a quantized load left most linear weights unquantized, else None."""
    if count["quantized_share"] >= APPLIED_SHARE:
        return None
    size = count["weight_bytes"]
    shown = f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.2f} MiB"
    return (f"quantization not applied: {count['quantized_weights']} of {count['linear_weights']} linear weights "
            f"quantized ({count['quantized_share']:.0%} of their parameters; weights {shown} after load)")
