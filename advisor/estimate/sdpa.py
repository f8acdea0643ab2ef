"""Which SDPA kernel torch runs on the target, and what that kernel allocates, replayed on meta tensors.

The memory of `F.scaled_dot_product_attention` depends on the backend: the fused kernels (flash, memory-efficient,
cuDNN) write the output and a float32 log-sum-exp; the math kernel materialises the score matrix (in float32 for
fp16/bf16 inputs). On meta tensors torch would always decompose to math, so `SdpaRouter` picks the backend as
torch picks it on the target and calls that backend's own op (whose meta kernel gives its true outputs):

- CPU: torch's own chooser, `torch._fused_sdp_choice`, on small CPU tensors of the same dtype, head dims, head
  counts, mask presence and flags (aten/src/ATen/native/transformers/sdp_utils_cpp.cpp: flash or math).
- CUDA: the order flash, memory-efficient, math (aten/src/ATen/native/transformers/cuda/sdp_utils.cpp
  `priority_order`, `select_sdp_backend`), with each kernel's gates from that file and sdp_utils_cpp.h:
  flash needs sm80+, fp16/bf16, no mask, equal head dims <= 256 and, when causal, a square score matrix;
  memory-efficient needs sm50+ (bf16: sm80+), equal q/k head dims aligned to the GEMM (8 for fp16/bf16, 4 for
  fp32 on sm80+), storage offsets aligned likewise (`check_data_ptr_alignment_mem_efficient`), no grouped-query
  heads. Both need (`check_batch_size_and_num_heads_dense`) the same batch and, without `enable_gqa`, the same
  number of heads in q, k and v: a multi-query model that passes K/V with one head and no `enable_gqa` (Falcon in
  transformers 5.17) runs the math kernel; and (`check_last_dim_stride_equals_1_dense`) the last dimension of q,
  k, v *and of the mask* at stride 1: T5's relative-position bias is a permuted view (stride = heads), so with
  transformers 5.17, which passes it as is (`create_position_bias_mask`), T5 runs the math kernel on CUDA; 5.24
  makes it contiguous first. (On CPU the mask stride is not checked: torch's own CPU chooser decides.) Measured on
  the H100 (torch 2.11): Falcon-7B b1 x 2048 and T5-base b1 x 4096 peaks match the math kernel within 1%.
- A boolean mask becomes a float mask first (`convert_boolean_attn_mask`, attention.cpp); the memory-efficient
  kernel then gets `preprocess_mask`: a mask whose strides are not multiples of 8 (or last stride not 1) is
  padded by `8 - (S % 8)` columns (a copy) and sliced back, then expanded to (B, H, L, S) as a view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import _disable_current_modes

__all__ = ["SdpaTarget", "choose_backend", "SdpaRouter"]

_CPU_BACKENDS = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn"}  # torch.nn.attention.SDPBackend values


@dataclass(frozen=True)
class SdpaTarget:
    """The device SDPA will run on: `cpu` or `cuda` with its compute capability and the kernels this torch has."""

    device: str = "cpu"
    capability: tuple[int, int] = (0, 0)
    usable: frozenset[str] = field(default_factory=lambda: frozenset({"flash", "efficient", "math"}))
    force: str | None = None  # "flash": a fused kernel of the same footprint (flash-attn, flex) replaces SDPA


def choose_backend(target: SdpaTarget, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                   is_causal: bool, enable_gqa: bool) -> str:
    """The backend torch would dispatch these inputs to on `target`."""
    if target.force:
        return target.force
    if target.device == "cpu":
        with _disable_current_modes():  # probe tensors, not the model's: the tracker must not see them
            def small(t: torch.Tensor) -> torch.Tensor:
                return torch.empty((1, t.shape[-3], min(t.shape[-2], 2), t.shape[-1]), dtype=t.dtype)
            qs, ks, vs = small(q), small(k), small(v)
            ms = None if mask is None else torch.zeros((1, 1, qs.shape[-2], ks.shape[-2]), dtype=mask.dtype)
            if q.stride(-1) != 1:
                qs = qs.transpose(-1, -2).contiguous().transpose(-1, -2)
            choice = torch._fused_sdp_choice(qs, ks, vs, ms, 0.0, is_causal, enable_gqa=enable_gqa)
        return _CPU_BACKENDS[int(choice)]
    if "flash" in target.usable and _flash_ok(target, q, k, v, mask, is_causal, enable_gqa):
        return "flash"
    if "efficient" in target.usable and _efficient_ok(target, q, k, v, mask, enable_gqa):
        return "efficient"
    return "math"


def _dense_ok(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, enable_gqa: bool,
              *, gqa: bool, ignore_singleton: bool) -> bool:
    """The dense-input gates both fused CUDA kernels share (sdp_utils_cpp.h): same batch; the same number of heads
    unless `enable_gqa` on a kernel that supports it (then K and V alike, dividing Q's); no empty sequence; the last
    dimension of q, k, v and the mask at stride 1 (`check_last_dim_stride_equals_1_dense`)."""
    if not (q.shape[0] == k.shape[0] == v.shape[0]) or 0 in (q.shape[-2], k.shape[-2]):
        return False
    hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
    if enable_gqa and gqa:
        if hk != hv or hq % hk:
            return False
    elif not hq == hk == hv:
        return False  # broadcast K/V heads (multi-query without enable_gqa): "require the same num_heads"
    strides_ok = all(t.stride(-1) == 1 for t in (q, k, v)) or (ignore_singleton and q.shape[-1] == 1)
    return strides_ok and (mask is None or mask.stride(-1) == 1)


def _flash_ok(target: SdpaTarget, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              is_causal: bool, enable_gqa: bool) -> bool:
    """`can_use_flash_attention` (sdp_utils.cpp)."""
    return (target.capability >= (8, 0) and q.dtype in (torch.float16, torch.bfloat16) and mask is None
            and q.shape[-1] == k.shape[-1] == v.shape[-1] <= 256
            and not (is_causal and q.shape[-2] != k.shape[-2])
            and _dense_ok(q, k, v, mask, enable_gqa, gqa=True, ignore_singleton=True))


def _efficient_ok(target: SdpaTarget, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                  enable_gqa: bool) -> bool:
    """`can_use_mem_efficient_attention` (sdp_utils.cpp): no grouped-query support in this kernel."""
    cap, dtype = target.capability, q.dtype
    if cap < (5, 0) or dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return False
    if dtype == torch.bfloat16 and cap < (8, 0):
        return False
    align = _gemm_alignment(cap, dtype)  # `minimum_gemm_alignment`
    if q.shape[-1] != k.shape[-1] or q.shape[-1] % align or v.shape[-1] % align:
        return False
    if cap >= (8, 0) and any(t.storage_offset() % align for t in (q, k, v)):
        return False  # `check_data_ptr_alignment_mem_efficient`: storage offset * element size, in bytes
    return _dense_ok(q, k, v, mask, enable_gqa, gqa=False, ignore_singleton=False)


def _gemm_alignment(capability: tuple[int, int], dtype: torch.dtype) -> int:
    """`minimum_gemm_alignment` (sdp_utils.cpp): 4 on sm80+, raised to 128 bits / element with tensor cores
    (sm80+, or sm70+ for fp16/bf16)."""
    half = dtype in (torch.float16, torch.bfloat16)
    align = 4 if capability >= (8, 0) else 1
    if capability >= (8, 0) or (capability >= (7, 0) and half):
        align = max(align, 128 // (16 if half else 32))
    return align


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """convert_boolean_attn_mask: zeros of the query's dtype, -inf where the boolean mask is False."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    out = torch.zeros_like(mask, dtype=dtype)
    return out.masked_fill_(mask.logical_not(), float("-inf"))


def _preprocess_mask(mask: torch.Tensor) -> torch.Tensor:
    """`preprocess_mask` (attention.cpp): `aligned_tensor<8>` or `pad_bias<8>`, a padded copy sliced back."""
    if mask.stride(-1) == 1 and all(mask.stride(i) % 8 == 0 for i in range(mask.dim() - 1)):
        return mask
    width = mask.shape[-1]
    return torch.nn.functional.pad(mask, (0, 8 - width % 8))[..., :width]


_SOFTMAXES = (torch.nn.functional.softmax, torch.softmax, torch.Tensor.softmax)


def _half_to_float(args: Any, kwargs: dict[str, Any]) -> bool:
    x = args[0] if args else None
    return isinstance(x, torch.Tensor) and x.dtype == torch.float16 and kwargs.get("dtype") == torch.float32


class SdpaRouter(TorchFunctionMode):
    """Send every scaled_dot_product_attention call to the backend the target would run; `used` counts them."""

    def __init__(self, target: SdpaTarget) -> None:
        super().__init__()
        self.target = target
        self.used: dict[str, int] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _SOFTMAXES and self.target.device == "cuda" and _half_to_float(args, kwargs):
            # SoftMax.cpp: on CUDA, fp16 in and fp32 out is one kernel (`_softmax(..., half_to_float=true)`);
            # elsewhere, and for bf16, the input is first copied to fp32, as the meta run would do
            dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)
            return torch.ops.aten._softmax(args[0], dim, True)
        if func is not torch.nn.functional.scaled_dot_product_attention:
            return func(*args, **kwargs)
        return self._sdpa(*args, **kwargs)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
        aten = torch.ops.aten
        backend = choose_backend(self.target, q, k, v, attn_mask, is_causal, enable_gqa)
        self.used[backend] = self.used.get(backend, 0) + 1
        mask = _float_mask(attn_mask, q.dtype)
        if backend == "flash" and self.target.device == "cpu":
            return aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, dropout_p, is_causal, attn_mask=mask,
                                                                   scale=scale)[0]
        if backend == "flash":
            pad = (-q.shape[-1]) % 8  # the flash kernel pads head_dim to a multiple of 8 (a copy)
            if pad:
                q, k, v = (torch.nn.functional.pad(t, (0, pad)) for t in (q, k, v))
            out = aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
            return out[..., : out.shape[-1] - pad] if pad else out
        if backend == "efficient":
            if mask is not None:
                mask = _preprocess_mask(mask).expand(q.shape[0], q.shape[-3], q.shape[-2], k.shape[-2])
            return aten._scaled_dot_product_efficient_attention(q, k, v, mask, False, dropout_p, is_causal,
                                                                scale=scale)[0]
        return _math(q, k, v, mask, is_causal, scale, enable_gqa)


def _math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
          scale: float | None, enable_gqa: bool) -> torch.Tensor:
    """`_scaled_dot_product_attention_math` (attention.cpp), op for op: on meta it is one op with only its outputs.

    fp16/bf16 inputs are upcast to float32 (allowFP16BF16ReductionMathSDP is off by default); query and key are
    each scaled by sqrt(scale); a causal flag becomes an L x S float mask; GQA repeats K and V; the scores get the
    mask in place, then `_safe_softmax`, whose `self.eq(-inf)` boolean copy of the scores is alive beside the
    softmax output (measured on the H100: 9.5 bytes per score in float32, docs/benchmarks).
    """
    import math

    origin = q.dtype
    if origin in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    factor = math.sqrt(scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    q = q * factor
    if is_causal:
        mask = _float_mask(torch.ones((q.shape[-2], k.shape[-2]), dtype=torch.bool, device=q.device).tril(), q.dtype)
    if enable_gqa and q.shape[-3] != k.shape[-3]:
        groups = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)
    attn = torch.matmul(q, k.transpose(-2, -1) * factor)
    if mask is not None:
        attn.add_(mask)
    probs = torch.softmax(attn, -1)
    masked = attn.eq(float("-inf"))
    rows = masked.all(-1, keepdim=True)
    del attn
    probs.masked_fill_(rows, 0.0)
    del masked, rows
    out = torch.matmul(probs, v)
    return out.to(origin) if out.dtype != origin else out
