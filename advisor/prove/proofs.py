"""Which kernel proofs `doctor` runs now, and which wait (issue 27).

A proof that needs a long compile (flex_attention: 15-25 s cold on an H100, docs/gpu/attention-kernels) runs
only where it can change an answer: with `advisor doctor --prove-all`, or when that kernel is a finalist of the
plan being made (api.doctor proves it then). Every other time it reports "not proven yet". The cheap proofs and a
slow one run side by side in one bounded pool (advisor.probe.kernels.run_kernels).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["DEFERRED", "SLOW", "deferred", "finalist_kernels", "prove_all", "prove_finalists", "proving_all"]

SLOW = ("flex_attention",)  # kernels whose first call compiles for seconds
DEFERRED = "not proven yet: `advisor doctor --prove-all`"
_ALL: contextvars.ContextVar[bool] = contextvars.ContextVar("advisor_prove_all", default=False)


@contextlib.contextmanager
def prove_all() -> Iterator[None]:
    """Run every kernel proof, the slow ones too (the CLI's `doctor --prove-all`)."""
    token = _ALL.set(True)
    try:
        yield
    finally:
        _ALL.reset(token)


def proving_all() -> bool:
    return _ALL.get()


def deferred(specs: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(the specs to run now, the slow ones left for later)."""
    if proving_all():
        return list(specs), []
    return [s for s in specs if s.kind not in SLOW], [s for s in specs if s.kind in SLOW]


def finalist_kernels(plan: Any, top: int = 3) -> set[str]:
    """The attention implementations of the chosen option and its closest rivals."""
    options = [o for o in [getattr(plan, "chosen", None), *(getattr(plan, "alternatives", None) or [])[: top - 1]]
               if o is not None]
    kernels = set()
    for option in options:
        kwargs = getattr(option, "from_pretrained", None) or {}
        attn = kwargs.get("attn_implementation") if isinstance(kwargs, dict) else None
        if isinstance(attn, str):
            kernels.add(attn)
    return kernels


def prove_finalists(env: Any, plan: Any) -> Any:
    """`env` with the deferred proofs of the plan's finalist kernels run now (on GPU 0), or `env` itself."""
    from advisor.facts import Unavailable
    from advisor.probe.kernels import KernelSpec, device_dtypes, run_kernels

    runs = dict(getattr(env, "kernel_runs", None) or {})
    wanted = [k for k in finalist_kernels(plan) & set(SLOW)
              if k in runs and isinstance(runs[k].runs, Unavailable) and runs[k].runs.reason == DEFERRED]
    if not wanted or env.source != "probe" or not env.gpu_list:
        return env
    runs.update(run_kernels([KernelSpec(k) for k in wanted], device="cuda:0",
                            dtypes=device_dtypes(env.gpu_list[0].dtypes)))
    return env.model_copy(update={"kernel_runs": runs})
