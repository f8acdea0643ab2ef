"""bitsandbytes' real layouts and transient buffers, for the modules transformers would quantize.

Weights (bitsandbytes 0.45-0.50, `bitsandbytes/functional.py`, `bitsandbytes/nn/modules.py`):
- LLM.int8 (`Int8Params`, `int8_vectorwise_quant`): the weight as int8 `CB` (out x in) plus one float32 row scale
  `SCB` per output row; the bias stays in the compute dtype.
- 4-bit (`quantize_4bit`, blocksize 64): two 4-bit codes per byte, ceil(n / 2) bytes; one absmax per block of 64.
  Without double quantization each absmax is float32; with it (`compress_statistics`, `quantize_blockwise` of the
  absmax in blocks of 256) each absmax is a uint8 code, plus one float32 absmax per 256 blocks, the 256-entry
  float32 dynamic code (`create_dynamic_map`) and the float32 offset; the NF4/FP4 code itself is 16 float32.

Transients during a forward (`bitsandbytes/autograd/_functions.py`):
- 4-bit, more than one token (`MatMul4Bit`): `dequantize_4bit` writes the whole weight in the compute dtype
  (after dequantizing the nested absmax to float32), then an ordinary linear; one token goes through `gemv_4bit`,
  which only dequantizes the absmax.
- 8-bit (`MatMul8bitLt`): the input cast to float16, its int8 copy `CA` and float32 row scales `SCA`, and while
  `int8_vectorwise_quant` looks for outliers, `A.abs()` (float16) and its boolean `>= threshold`; the int8
  matmul's int32 result, dequantized to float16, then cast back to the input's dtype. The outlier columns (input
  values above the 6.0 threshold) add `subA` and a dequantized `subB` slice: their count depends on the data, and
  is zero on the random-weight models of docs/benchmarks, so it is left out.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["install_quantized_forward", "quantized_forward", "quantized_linears", "quantized_weight_bytes"]

BLOCK_4BIT = 64
BLOCK_NESTED = 256
THRESHOLD = 6.0  # BitsAndBytesConfig.llm_int8_threshold default


def quantized_weight_bytes(out_features: int, in_features: int, quantization: str, *, double_quant: bool = True) -> int:
    """Bytes of one quantized weight matrix in bitsandbytes' layout (the bias is counted with the other params)."""
    return sum(quantized_weight_parts(out_features, in_features, quantization, double_quant=double_quant))


def quantized_weight_parts(out_features: int, in_features: int, quantization: str, *,
                           double_quant: bool = True) -> tuple[int, ...]:
    """The tensors of one quantized weight, each its own allocation: int8 `CB` and fp32 `SCB`; NF4's packed
    weight, absmax (uint8 when nested) and, nested, fp32 absmax, code (256 fp32), offset, plus the 16-float code
    of the outer state."""
    n = out_features * in_features
    if quantization == "8bit":
        return n, 4 * out_features
    blocks = math.ceil(n / BLOCK_4BIT)
    packed = math.ceil(n / 2)
    if not double_quant:
        return packed, 4 * blocks, 16 * 4
    return packed, blocks, 4 * math.ceil(blocks / BLOCK_NESTED), 256 * 4, 4, 16 * 4


def quantized_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The modules transformers' bitsandbytes quantizer replaces (nn.Linear and GPT-2's Conv1D), by name."""
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    return {
        name: module for name, module in model.named_modules()
        if (type(module) is torch.nn.Linear or isinstance(module, Conv1D)) and should_convert_module(name, skip)
    }


def _shape(module: torch.nn.Module) -> tuple[int, int]:
    w = module.weight
    out_f, in_f = w.shape
    if type(module).__name__ == "Conv1D":
        in_f, out_f = w.shape
    return int(out_f), int(in_f)


def _forward_4bit(self: Any, x: torch.Tensor) -> torch.Tensor:
    out_f, in_f = _shape(self)
    blocks = math.ceil(out_f * in_f / BLOCK_4BIT)
    absmax = torch.empty(blocks, dtype=torch.float32, device=x.device)  # nested absmax, dequantized
    if x.numel() == x.shape[-1]:  # one token: gemv_4bit
        out = torch.empty(*x.shape[:-1], out_f, dtype=x.dtype, device=x.device)
        del absmax
    else:
        weight = torch.empty(out_f, in_f, dtype=x.dtype, device=x.device)  # dequantize_4bit
        del absmax
        out = torch.nn.functional.linear(x, weight)
        del weight
    if self.bias is not None:
        out.add_(self.bias)
    return out


def _forward_8bit(self: Any, x: torch.Tensor) -> torch.Tensor:
    """`Linear8bitLt.forward` -> `MatMul8bitLt.forward` (bitsandbytes 0.50.2 autograd/_functions.py), its CUDA
    kernels (backends/cuda/ops.py) and the default `int8_mixed_scaled_mm` / `int8_scaled_mm` /
    `int8_vectorwise_dequant` (backends/default/ops.py, _ops.py), allocation for allocation, in their order."""
    out_f, in_f = _shape(self)
    rows = x.numel() // x.shape[-1]
    n_out = int(self._advisor_outliers(rows, in_f))
    dev = x.device
    # `F.int8_vectorwise_quant(A.to(torch.float16), threshold=state.threshold)`: the fp16 copy is an argument,
    # alive until the call returns (`.to` of a tensor already fp16 is the tensor itself)
    half = x if x.dtype == torch.float16 else x.to(torch.float16)
    sca = torch.empty(rows, dtype=torch.float32, device=dev)  # row_stats
    ca = torch.empty(rows, in_f, dtype=torch.int8, device=dev)  # out_row
    outliers = half.abs() >= THRESHOLD  # `outliers = A.abs() >= threshold`: the abs is freed, the mask is not
    cols = torch.empty(n_out, dtype=torch.int64, device=dev)  # argwhere(outliers.any(dim=0))
    del outliers, half
    sub_a = sub_b = None
    if n_out:
        # int8_mixed_scaled_mm: `subA = A[:, outlier_cols].contiguous()`, then
        # `int8_vectorwise_dequant(CB[:, outlier_cols].contiguous(), SCB).to(A.dtype).t()`, where the dequant is
        # `A * stats.view(-1, 1) * 7.874e-3`: the int8 slice and two float32 products alive at once
        sub_a = torch.empty(rows, n_out, dtype=x.dtype, device=dev)
        cb = torch.empty(out_f, n_out, dtype=torch.int8, device=dev)
        scaled = torch.empty(out_f, n_out, dtype=torch.float32, device=dev)
        dequant = torch.empty(out_f, n_out, dtype=torch.float32, device=dev)
        del scaled, cb
        sub_b = dequant.to(x.dtype) if x.dtype != torch.float32 else dequant
        del dequant
    acc = torch.empty(rows, out_f, dtype=torch.int32, device=dev)  # int8_linear_matmul
    out16 = torch.empty(rows, out_f, dtype=torch.float16, device=dev)  # int8_mm_dequant: fp16 only
    if self.bias is not None:
        out16.add_(self.bias)
    out = out16.to(x.dtype)  # `return out.to(dtype)` while the int32 result is still referenced by the caller
    del out16, acc, cols
    if n_out:
        out = out.addmm(sub_a, sub_b.t())  # `output = output.addmm(subA, subB)`: a new tensor
    del sub_a, sub_b, ca, sca  # MatMul8bitLt.forward's locals, released when it returns
    return out.view(*x.shape[:-1], out_f)


def install_quantized_forward(model: torch.nn.Module, quantization: str,
                              outliers: Callable[[str, int, int], int] | None = None) -> dict[str, torch.nn.Module]:
    """Give each module bitsandbytes would quantize the memory behaviour of its bitsandbytes forward.

    `outliers(name, rows, in_features)` is the number of input columns with a value of magnitude >= 6.0 for the
    8-bit modules (LLM.int8's mixed-precision decomposition); none by default."""
    modules = quantized_linears(model)
    for name, module in modules.items():
        quantized_forward(module, quantization, functools.partial(outliers, name) if outliers else None)
    return modules


def quantized_forward(module: torch.nn.Module, quantization: str,
                      outliers: Callable[[int, int], int] | None = None) -> None:
    """Give one linear module bitsandbytes' forward; `outliers(rows, in_features)` as in install_quantized_forward."""
    forward = _forward_8bit if quantization == "8bit" else _forward_4bit
    module.forward = types.MethodType(forward, module)  # type: ignore[method-assign]
    module._advisor_outliers = outliers or (lambda _rows, _in: 0)  # type: ignore[assignment]
