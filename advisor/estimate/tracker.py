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
# `meta_scalars`, they read as 0 / False: "no inf found", "the mask is not all ones" (the caller leaves the mask
# out when there is no padding). These checks only steer between paths of the same shapes.
_META_SCALAR = {True: 0.0, False: 0}
_SCALAR_OPS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default)


def _storage_key(t: torch.Tensor) -> int:
    return int(t.untyped_storage()._cdata)


class LiveBytes(TorchDispatchMode):
    """Track the bytes of storages allocated by ops inside the mode: `live` now, `peak` the most at once, `ops`
    the number of ops seen (a run that skips ops sees fewer).

    A storage is freed when its Python object dies; torch keeps that object alive exactly as long as the C++
    storage (PyObject preservation), so a weakref callback marks the free as the caching allocator would see it.
    """

    def __init__(self, *, meta_scalars: bool = False) -> None:
        super().__init__()
        self.meta_scalars = meta_scalars
        self.live = 0
        self.peak = 0
        self.ops = 0
        self._refs: dict[int, Any] = {}

    def reset_peak(self) -> None:
        """Start a new phase: its peak counts from what is alive now."""
        self.peak = self.live

    def _free(self, key: int, nbytes: int) -> None:
        if self._refs.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.meta_scalars and func in _SCALAR_OPS and args[0].is_meta:
            return _META_SCALAR[args[0].dtype.is_floating_point]
        out = func(*args, **kwargs)
        self.ops += 1
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
            self.live += nbytes
            if self.live > self.peak:
                self.peak = self.live
        return out
