"""The deferred kernel proofs a plan needs (issue 27): a proof that compiles for seconds (flex_attention,
advisor.probe.deferral) waits at probe time and runs here when that kernel is a finalist of the plan being made."""

from __future__ import annotations

from typing import Any

from advisor.probe.deferral import DEFERRED, SLOW

__all__ = ["finalist_kernels", "prove_finalists"]


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
