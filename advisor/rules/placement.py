"""PLACE rules: does the requested placement exist on the target?"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.facts import TorchInfo
from advisor.findings import Finding, Severity
from advisor.rules.base import Context, rule


@rule("PLACE001", "GPU placement without a usable GPU", scope="candidate", remedy="switch",
      fix='drop device_map (or use device_map="cpu"), or run on a machine with a GPU and a CUDA/ROCm torch')
def gpu_placement(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A `device_map` that names a GPU fails at load time when torch sees none (a CPU-only box or a CPU torch)."""
    if c is None or c.placement == "cpu":
        return
    torch = ctx.torch
    if not ctx.gpus:
        yield gpu_placement.finding(Severity.FAIL, "the configuration places the model on a GPU; the target has none",
                                    detected="no GPU", required="a GPU", option="device_map")
    elif isinstance(torch, TorchInfo) and not torch.assumed and torch.cuda is None and torch.hip is None:
        yield gpu_placement.finding(Severity.FAIL, f"torch {torch.version} is a CPU build: it cannot use the GPU",
                                    detected="CPU torch", required="CUDA or ROCm torch", option="device_map")
    elif c.placement == "multi-gpu" and len(ctx.gpus) < 2:
        yield gpu_placement.finding(Severity.WARN, "device_map='auto' with one GPU uses only ~90% of it and may "
                                    "offload layers to the CPU silently", detected="1 GPU", required="", option="device_map",
                                    fix='use device_map="cuda:0" to fail loudly instead of offloading')
