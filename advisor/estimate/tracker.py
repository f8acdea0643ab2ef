"""Live bytes per op: a dispatch mode that sees every tensor an op creates and when its storage dies.

The same tracker runs over a real forward (tests, on CPU) and over a simulated one on meta tensors
(advisor.estimate.simulate), so the two can be compared op for op. It counts only storages created while it is
active: weights and anything built before stay out, and views of them are not new memory.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveBytes"]

# NOTE: a meta tensor has no values, so `.item()`, `bool(t.any())` and the like have no answer. With
# `meta_scalars`, they read as 0 / False: "no inf found", "the mask is not all ones" (the caller passes a mask only
# where there is padding, and builds it with `empty`, values unknown). These checks only steer between paths of the
# same shapes, except one: a model that builds its own all-ones mask (OPT in transformers 5.17:
# `attention_mask = torch.ones(...)` when none is given) gets it dropped on the GPU, where
# `_ignore_causal_mask_sdpa` sees `padding_mask.all()` true, and SDPA runs without a mask. So values known to be
# all ones (made by `ones`/`full(1)`, then converted, copied, viewed or reduced by `all`/`any`) are tracked, with
# the scalars computed from them (`sum` of all ones, compared with `==`), and a scalar read of one gives its value.
_META_SCALAR = {True: 0.0, False: 0}
_SCALAR_OPS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default)
_aten = torch.ops.aten
_ONES_MADE = {_aten.ones.default, _aten.ones_like.default, _aten.new_ones.default}
_FULL_MADE = {_aten.full.default: 1, _aten.new_full.default: 2, _aten.full_like.default: 1}
_ONES_KEPT = {_aten._to_copy.default, _aten.clone.default, _aten.all.default, _aten.any.default,
              _aten.all.dim, _aten.any.dim, _aten.expand.default, _aten.view.default, _aten.slice.Tensor,
              _aten.select.int, _aten.unsqueeze.default, _aten.alias.default, _aten._unsafe_view.default,
              _aten.lift_fresh.default, _aten.detach.default, _aten.reshape.default, _aten.contiguous.default}


def _grouped_mm_meta(args: Any, kwargs: dict[str, Any]) -> torch.Tensor:
    """`_grouped_mm`'s output for float16/float32 inputs on meta. Its meta kernel (torch 2.13) takes bfloat16 only,
    while the CPU kernel (torch 2.13, here) and CUDA's (torch 2.11 on an H100: docs/gpu/grouped-mm-dtypes-h100.json)
    run both, so MoE experts in those dtypes (Mixtral on a T4, in float32 on a CPU) had no simulation. The shape is
    the bfloat16 kernel's, the dtype the inputs' (or `out_dtype`); nothing else is allocated."""
    cast = [a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args[:2]]
    shaped = _aten._grouped_mm.default(*cast, *args[2:], **{k: v for k, v in kwargs.items() if k != "out_dtype"})
    dtype = kwargs.get("out_dtype") or (args[4] if len(args) > 4 and args[4] is not None else args[0].dtype)
    return torch.empty_strided(shaped.shape, shaped.stride(), dtype=dtype, device="meta")


def _storage_key(t: torch.Tensor) -> int:
    return int(t.untyped_storage()._cdata)


class LiveBytes(TorchDispatchMode):
    """Track the bytes of storages allocated by ops inside the mode: `live` now, `peak` the most at once, `ops`
    the number of ops seen (a run that skips ops sees fewer).

    A storage is freed when its Python object dies; torch keeps that object alive exactly as long as the C++
    storage (PyObject preservation), so a weakref callback marks the free as the caching allocator would see it.
    """

    def __init__(self, *, meta_scalars: bool = False, allocator: Any = None) -> None:
        super().__init__()
        self.meta_scalars = meta_scalars
        self.allocator = allocator  # an `allocator.CachingAllocator`: count its blocks instead of tensor bytes
        self.live = 0
        self.peak = 0
        self.ops = 0
        self._refs: dict[int, Any] = {}
        self._nonzero: set[int] = set()  # storages of meta tensors known to hold only ones (see the note above)
        self._known: dict[int, Any] = {}  # storages of meta scalars whose value is known
        self._handles: dict[int, int] = {}  # storage -> allocator block

    def reset_peak(self) -> None:
        """Start a new phase: its peak counts from what is alive now."""
        mark = getattr(self.allocator, "mark", None)  # a recording allocator (advisor.estimate.trace_formula)
        if mark is not None:
            mark("reset")
        self.peak = self.live

    def _free(self, key: int, nbytes: int) -> None:
        if self._refs.pop(key, None) is not None:
            if self.allocator is not None:
                before = self.allocator.allocated
                self.allocator.free(self._handles.pop(key))
                nbytes = before - self.allocator.allocated
            self.live -= nbytes
            self._nonzero.discard(key)
            self._known.pop(key, None)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.meta_scalars and func in _SCALAR_OPS and args[0].is_meta:
            key = _storage_key(args[0])
            if key in self._known:
                value = self._known[key]
                return bool(value) if func is _aten.is_nonzero.default else value
            if key in self._nonzero:
                return 1.0 if args[0].dtype.is_floating_point else (True if args[0].dtype == torch.bool else 1)
            return _META_SCALAR[args[0].dtype.is_floating_point]
        if func is _aten._grouped_mm.default and args[0].is_meta and args[0].dtype != torch.bfloat16:
            out = _grouped_mm_meta(args, kwargs)
        else:
            out = func(*args, **kwargs)
        self.ops += 1
        if self.meta_scalars:
            self._follow_nonzero(func, args, kwargs, out)
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = int(storage._cdata)
            if key in inputs or key in self._refs:
                continue  # a view or an in-place result: no new memory
            nbytes = int(storage.nbytes())
            self._refs[key] = weakref.ref(storage, lambda _r, k=key, n=nbytes: self._free(k, n))
            if self.allocator is not None:
                before = self.allocator.allocated
                self._handles[key] = self.allocator.malloc(nbytes)
                nbytes = self.allocator.allocated - before
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out

    def _follow_nonzero(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        """Keep `_nonzero` (every element 1 / True) and `_known` (a scalar's value) up to date for one meta op."""
        if not isinstance(out, torch.Tensor) or not out.is_meta:
            if func._schema.is_mutable:
                for t in tree_leaves(args):
                    if isinstance(t, torch.Tensor):
                        self._nonzero.discard(_storage_key(t))
                        self._known.pop(_storage_key(t), None)
            return
        key = _storage_key(out)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        first_key = _storage_key(first) if first is not None else None
        inputs = {_storage_key(t) for t in tree_leaves(args) if isinstance(t, torch.Tensor)}
        if key not in inputs or func._schema.is_mutable:  # a new storage, or one written in place: unknown values
            self._nonzero.discard(key)
            self._known.pop(key, None)
        if func in _ONES_MADE:
            self._nonzero.add(key)
        elif func in _FULL_MADE:
            at = _FULL_MADE[func]
            fill = args[at] if len(args) > at else kwargs.get("fill_value")
            if fill == 1:
                self._nonzero.add(key)
        elif func in _ONES_KEPT and first_key in self._nonzero:
            self._nonzero.add(key)
        elif func is _aten.sum.default and first_key in self._nonzero:
            self._known[key] = first.numel()  # `fast_all` (masking_utils): `tensor.sum() == tensor.numel()`
        elif func is _aten.eq.Scalar and first_key in self._known:
            self._known[key] = self._known[first_key] == args[1]
