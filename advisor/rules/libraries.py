"""LIB rules: the software stack itself, independent of any one configuration."""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.facts import TorchInfo, Unavailable
from advisor.findings import Finding, Severity
from advisor.knowledge import version_matches
from advisor.rules.base import Context, rule


@rule("LIB001", "torch missing", scope="environment", fix="pip install torch (the build for your CUDA or ROCm)")
def torch_missing(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Nothing loads without torch."""
    if isinstance(ctx.env.torch, Unavailable):
        yield torch_missing.finding(Severity.FAIL, f"torch: {ctx.env.torch.reason}", detected="torch: unavailable",
                                    required="torch installed")


@rule("LIB002", "transformers missing", scope="environment", fix="pip install transformers")
def transformers_missing(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """The advisor plans `from_pretrained` calls; transformers must be installed on the target."""
    if not ctx.env.library("transformers").installed:
        yield transformers_missing.finding(Severity.FAIL, "transformers is not installed",
                                           detected="transformers: not installed", required="transformers >= 4.36")


@rule("LIB003", "torch cannot see the GPU", scope="environment",
      fix="install a CUDA build of torch (pip install torch --index-url https://download.pytorch.org/whl/cu126) "
          "and check the driver with nvidia-smi")
def torch_without_gpu(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A CPU-only torch wheel on a GPU machine (or a driver too old for torch's CUDA) silently runs on the CPU."""
    torch = ctx.env.torch
    if not ctx.gpus or not isinstance(torch, TorchInfo) or torch.assumed:
        return
    if torch.cuda is None and torch.hip is None:
        yield torch_without_gpu.finding(
            Severity.FAIL, f"this machine has {len(ctx.gpus)} GPU(s) but torch {torch.version} is a CPU-only build",
            detected=f"torch {torch.version} (CPU)", required="a CUDA or ROCm build of torch",
        )
    elif torch.cuda_available is not True:
        yield torch_without_gpu.finding(
            Severity.FAIL, f"torch {torch.version} (CUDA {torch.cuda}) cannot use the GPU: {torch.cuda_available}",
            detected="torch.cuda.is_available() is False", required="a driver new enough for this CUDA build",
        )


@rule("LIB004", "kernels outside transformers' accepted window", scope="environment",
      fix="install the kernels version transformers accepts (see the message)")
def kernels_window(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers pins `kernels` to a narrow window; outside it, Hub kernels (the FlashAttention fallback) are
    silently disabled."""
    lib = ctx.env.library("kernels")
    if not lib.installed:
        return
    for row in ctx.knowledge.constraints_for("kernels", ctx.versions()):
        if not version_matches(lib.version, row.specifier):
            yield kernels_window.finding(Severity.WARN, row.message, detected=f"kernels {lib.version}",
                                         required=f"kernels{row.specifier}", fix=row.fix)


@rule("LIB005", "BetterTransformer is gone", scope="environment",
      fix='drop model.to_bettertransformer(); load with attn_implementation="sdpa" (the default)')
def bettertransformer(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """The guide's BetterTransformer step (`model.to_bettertransformer()`) is obsolete: optimum raises for
    transformers >= 4.49, removed it in 2.0, and transformers 5.0 removed the method. Native SDPA replaces it."""
    optimum = ctx.env.library("optimum")
    tf = ctx.env.version_of("transformers")
    if optimum.installed and version_matches(optimum.version, "<2.0") and version_matches(tf, ">=4.49"):
        yield bettertransformer.finding(
            Severity.WARN,
            f"optimum {optimum.version} still ships BetterTransformer, but it refuses transformers {tf}",
            detected=f"optimum {optimum.version}, transformers {tf}", required="native SDPA",
        )


@rule("LIB006", "native extension installed but broken", scope="environment",
      fix="reinstall the package for this exact torch/CUDA (see the error); `python -m bitsandbytes` diagnoses bnb")
def broken_extension(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A wheel built for another torch, CUDA major or C++ ABI installs fine and fails on import
    (`undefined symbol: ...`); bitsandbytes installs a mock when its library is missing."""
    for lib in ctx.env.libraries.values():
        if lib.installed and lib.importable is False:
            yield broken_extension.finding(
                Severity.WARN, f"{lib.distribution} {lib.version} does not load: {lib.error}",
                detected=f"{lib.distribution} {lib.version}", required="importable",
            )


@rule("LIB007", "onnxruntime and onnxruntime-gpu both installed", scope="environment",
      fix="pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
def ort_conflict(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Both distributions provide the `onnxruntime` module; whichever was installed last wins, often the CPU one."""
    if ctx.env.library("onnxruntime").installed and ctx.env.library("onnxruntime-gpu").installed:
        yield ort_conflict.finding(Severity.WARN, "onnxruntime and onnxruntime-gpu are both installed",
                                   detected="both", required="only onnxruntime-gpu")


@rule("LIB008", "GPU memory is partitioned (MIG)", scope="environment",
      fix="plan against the MIG instance's memory (probe inside the instance), not the whole card")
def mig_mode(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """With MIG enabled, a process sees only its instance's slice of memory and compute."""
    for gpu in ctx.gpus:
        if gpu.mig_mode is True:
            yield mig_mode.finding(Severity.WARN, f"GPU {gpu.index} ({gpu.name}) has MIG enabled",
                                   detected="MIG on", required="")


@rule("LIB009", "a GPU could not be read", scope="environment",
      fix="check `nvidia-smi`; a lost GPU needs a reset or reboot")
def gpu_unreadable(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """NVML reports a GPU whose memory or capability cannot be read (lost, or fields not supported)."""
    for gpu in ctx.gpus:
        for field in ("compute_capability", "memory_total_bytes"):
            value = getattr(gpu, field)
            if isinstance(value, Unavailable) and gpu.vendor == "nvidia":
                yield gpu_unreadable.finding(Severity.WARN, f"GPU {gpu.index}: {field.replace('_', ' ')} {value}",
                                             detected=str(value), required="")
                break
