"""SSM rules: state-space models (Mamba and its hybrids) without their CUDA kernels (issue 27)."""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.findings import Finding, Severity
from advisor.rules.base import Context, rule

# model types whose mixer layers call mamba-ssm / causal-conv1d when importable, else transformers' torch path
SSM_TYPES = ("mamba", "mamba2", "jamba", "falcon_h1", "bamba", "zamba", "zamba2", "granitemoehybrid", "nemotron_h")
KERNELS = ("mamba-ssm", "causal-conv1d")


@rule("SSM001", "Mamba kernels missing: the slow path", scope="environment",
      fix="pip install mamba-ssm causal-conv1d --no-build-isolation (built for this torch and CUDA)")
def ssm_slow_path(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Without mamba-ssm (the fused selective scan) and causal-conv1d, transformers runs Mamba layers in plain
    torch: Mamba-1 loops over the tokens one scan step at a time, Mamba-2 materialises per-chunk tensors of
    batch x chunks x chunk² x heads x state in float32. The memory figures here simulate that slow path, which the
    GPU measurements confirm (mamba2-1.3b: 33.7 GiB at one 4,096-token prompt on the H100, within 0.1%); the
    fused kernels allocate none of those intermediates. What they save in time is unmeasured here."""
    model = ctx.model
    if model is None or model.model_type not in SSM_TYPES or not ctx.gpus:
        return
    missing = [name for name in KERNELS if not ctx.env.library(name).installed]
    if missing:
        yield ssm_slow_path.finding(
            Severity.WARN,
            f"{model.model_type} runs transformers' slow path: {' and '.join(missing)} not installed; its memory "
            "figure is the slow path's (the fused scan allocates none of its per-chunk intermediates; time saved: "
            "unmeasured)",
            detected=", ".join(f"{name}: not installed" for name in missing), required="mamba-ssm, causal-conv1d",
        )
