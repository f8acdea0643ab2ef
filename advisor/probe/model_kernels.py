"""Issue 29: the attention kernels run at the model's own head_dim and dtype, for `doctor MODEL`.

The probe runs each kernel at head_dim 64 and 128 (advisor/probe/kernels.py); a kernel's limits are per head_dim
and dtype (flash-attn-4 4.0.0b36 asserts 8 <= head_dim <= 256 on SM90 but <= 128 on SM100/SM110, bar (192, 128)
and (256, 256): flash_attn/cute/interface.py:121-138), so Gemma's 256 or Phi-2's 80 proves nothing at 64/128.
Where the probe's runs already cover the model's case they are reused (no extra child); on this machine's GPU
the missing case runs once, in the same isolated children; on a snapshot or without a GPU nothing runs, and the
result says why.
"""

from __future__ import annotations

from collections.abc import Callable
from pydantic import BaseModel, ConfigDict

from advisor.facts import Environment, KernelCase, KernelRun, Unavailable
from advisor.probe.kernels import kernel_specs, run_kernels

__all__ = ["ModelKernelRuns", "is_attention_kernel", "model_kernel_runs", "summary"]


class ModelKernelRuns(BaseModel):
    """Each attention kernel at (head_dim, dtype): from the probe's runs, run now, or not run (and why)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    head_dim: int
    dtype: str
    source: str  # "the probe's runs", "run now on cuda:0", or why nothing ran
    runs: dict[str, KernelRun]


def is_attention_kernel(kind: str) -> bool:
    return kind.startswith(("sdpa_", "flash_attention_", "hub:")) or kind == "flex_attention"


def _case(run: KernelRun, head_dim: int, dtype: str) -> KernelCase | None:
    return next((c for c in run.cases if c.head_dim == head_dim and c.dtype == dtype), None)


def model_kernel_runs(env: Environment, head_dim: int, dtype: str, *, live: bool, device: str = "cuda:0",
                      runner: Callable[..., dict[str, KernelRun]] = run_kernels) -> ModelKernelRuns:
    """The attention kernels the probe listed, at this head_dim and dtype. `live`: `env` is this machine."""
    listed = {kind: run for kind, run in env.kernel_runs.items() if is_attention_kernel(kind)}
    half_only = {"sdpa_flash", "sdpa_cudnn"}
    out: dict[str, KernelRun] = {}
    missing = []
    reused = 0
    for kind, run in listed.items():
        if dtype == "float32" and (kind in half_only or kind.startswith(("flash_attention_", "hub:"))):
            out[kind] = KernelRun(kernel=kind, runs=Unavailable(reason="no float32 kernel (fp16/bf16 only)"))
            continue
        case = _case(run, head_dim, dtype)
        if case is not None:
            out[kind] = KernelRun(kernel=kind, runs=case.runs, error=case.error, device=run.device, cases=(case,))
            reused += 1
        elif isinstance(run.runs, Unavailable):
            out[kind] = run  # the probe ran nothing (no GPU, skipped): the same reason holds here
        else:
            missing.append(kind)
    source = "the probe's runs"
    if missing and live:
        specs = [s for s in kernel_specs(env.libraries, [k[4:] for k in missing if k.startswith("hub:")])
                 if s.kind in missing]
        out.update(runner(specs, device=device, dtypes=[dtype], head_dims=[head_dim]) if specs else {})
        source = f"the probe's runs and a run now on {device}" if reused else f"run now on {device}"
    elif missing:
        probed = sorted({c.head_dim for r in listed.values() for c in r.cases if c.head_dim is not None})
        source = (f"the snapshot ran head_dim {', '.join(map(str, probed)) or 'none'}: run `advisor doctor MODEL` on "
                  "that machine to run the rest")
    for kind in missing:
        out.setdefault(kind, KernelRun(kernel=kind, runs=Unavailable(reason=f"not run at head_dim {head_dim}")))
    return ModelKernelRuns(head_dim=head_dim, dtype=dtype, source=source,
                           runs={kind: out[kind] for kind in listed})


def summary(result: ModelKernelRuns) -> list[tuple[str, str, str]]:
    """(kernel, status, text) per kernel, for the report."""
    rows = []
    for kind, run in result.runs.items():
        if run.runs is True:
            rows.append((kind, "ok", "runs"))
        elif run.runs is False:
            rows.append((kind, "problem", f"fails: {run.error or 'see the probe'}"))
        else:
            rows.append((kind, "info", run.runs.reason))
    return rows
