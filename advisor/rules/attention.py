"""ATTN rules: can this attn_implementation run this model on this machine?"""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import Version

from advisor.facts import ComputeCapability
from advisor.findings import Finding, Severity
from advisor.knowledge import version_matches
from advisor.rules.base import Candidate, Context, rule

FLASH_PACKAGES = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn-3", "flash_attention_4": "flash-attn-4"}


def _requirement(ctx: Context, c: Candidate | None):  # type: ignore[no-untyped-def]
    return ctx.knowledge.attention_requirement(c.attn) if c is not None else None


@rule("ATTN001", "architecture does not implement this attention", scope="candidate",
      fix='use attn_implementation="sdpa" (or "eager"), or upgrade transformers if a newer release adds support')
def arch_support(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers refuses an attn_implementation the model class does not declare
    (`_supports_sdpa`, `_supports_flash_attn`, `_supports_flex_attn`) with a ValueError at load time."""
    if c is None or ctx.model is None or c.attn == "eager":
        return
    if ctx.support and not ctx.support.get(c.attn, False):
        cls = ctx.model.architecture or ctx.model.model_type
        fix = None
        installed = ctx.env.version_of("transformers")
        if installed is not None:
            from advisor.knowledge.history import supported_since

            newer = supported_since(ctx.model.model_type, c.attn, installed)
            if newer is not None:
                fix = f"upgrade transformers to >= {newer} to get {c.attn} for {ctx.model.model_type} (pip install -U 'transformers>={newer}')"
        yield arch_support.finding(
            Severity.FAIL,
            f"{cls} does not support attn_implementation={c.attn!r} in {ctx.support_source}",
            detected=f"{ctx.model.model_type}: {c.attn} not declared",
            required=f"a model class that declares {c.attn}",
            fix=fix,
            option=c.attn,
        )


@rule("ATTN002", "flash-attention package missing", scope="candidate",
      fix="pip install flash-attn --no-build-isolation (a wheel matching your torch and CUDA), or use sdpa")
def flash_package(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers needs the flash-attn distribution (FA2) or flash-attn-3 (FA3) to be installed; without it,
    it falls back to a Hub kernel only when the `kernels` package is installed in its accepted version window."""
    if c is None or c.attn not in FLASH_PACKAGES:
        return
    dist = FLASH_PACKAGES[c.attn]
    lib = ctx.env.library(dist)
    if lib.installed:
        return
    kernels = ctx.env.library("kernels")
    window = ctx.knowledge.constraints_for("kernels", ctx.versions())
    kernels_ok = kernels.usable and all(version_matches(kernels.version, w.specifier) for w in window)
    if kernels_ok and c.attn == "flash_attention_2":
        yield flash_package.finding(
            Severity.WARN,
            f"{dist} is not installed; transformers will load the Hub kernel kernels-community/flash-attn2 "
            "through `kernels` (needs network access on first use)",
            detected=f"kernels {kernels.version}",
            required=f"{dist} installed, or a cached Hub kernel",
            option=c.attn,
        )
        return
    fix = {
        "flash-attn": flash_package.fix,
        "flash-attn-3": "build FlashAttention-3 from the hopper/ folder of Dao-AILab/flash-attention, or use sdpa",
        "flash-attn-4": "pip install flash-attn-4 (Hopper/Blackwell), or use sdpa",
    }[dist]
    yield flash_package.finding(
        Severity.FAIL,
        f"{c.attn} needs the {dist} package, which is not installed",
        detected=f"{dist}: not installed",
        required=f"{dist} installed and importable",
        fix=fix,
        option=c.attn,
    )


@rule("ATTN003", "flash-attention package installed but broken", scope="candidate",
      fix="reinstall a flash-attn wheel built for this exact torch version, CUDA major and C++ ABI "
          "(pip install --force-reinstall --no-build-isolation flash-attn)")
def flash_broken(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers only checks package metadata; a wheel built for another torch fails at first use with
    `undefined symbol` errors. The probe imports the native extension in a child process to find out."""
    if c is None or c.attn not in FLASH_PACKAGES:
        return
    lib = ctx.env.library(FLASH_PACKAGES[c.attn])
    if lib.installed and lib.importable is False:
        hint = " (C++ ABI or torch version mismatch)" if "undefined symbol" in (lib.error or "") else ""
        yield flash_broken.finding(
            Severity.FAIL,
            f"{lib.distribution} {lib.version} is installed but does not import{hint}: {lib.error}",
            detected=f"{lib.distribution} {lib.version}: import fails",
            required="an importable build",
            option=c.attn,
        )


@rule("ATTN004", "flash-attention package too old", scope="candidate",
      fix="pip install -U flash-attn --no-build-isolation")
def flash_version(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers refuses flash_attention_2 below its minimum flash-attn version (2.3.3 in v5, 2.1.0 in v4)."""
    if c is None or c.attn != "flash_attention_2":
        return
    lib = ctx.env.library("flash-attn")
    if not lib.installed:
        return
    for row in ctx.knowledge.constraints_for("flash-attn", ctx.versions()):
        if not version_matches(lib.version, row.specifier):
            yield flash_version.finding(
                Severity.FAIL, row.message, detected=f"flash-attn {lib.version}", required=f"flash-attn{row.specifier}",
                fix=row.fix, option=c.attn,
            )


@rule("ATTN005", "GPU too old or unsupported for this attention kernel", scope="candidate",
      fix='use attn_implementation="sdpa": it picks the fastest kernel this GPU supports')
def attn_hardware(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention-2 needs compute capability >= 8.0 (Ampere); on a T4 or V100 the kernel raises
    'FlashAttention only supports Ampere GPUs or newer.' at the first forward pass, after a successful load.
    FlashAttention-3 targets Hopper (9.x). Neither runs on the CPU."""
    req = _requirement(ctx, c)
    if c is None or req is None:
        return
    if c.placement == "cpu" and not req.cpu:
        yield attn_hardware.finding(
            Severity.FAIL, f"{c.attn} needs a GPU; this target has none", detected="CPU only",
            required="a CUDA GPU", option=c.attn,
            fix='on the CPU use attn_implementation="sdpa" (or "eager"); this kernel needs an NVIDIA GPU',
        )
        return
    if c.placement == "cpu":
        return
    if ctx.rocm:
        if not req.rocm:
            yield attn_hardware.finding(
                Severity.FAIL, f"{c.attn} has no ROCm build", detected="AMD GPU", required="NVIDIA GPU", option=c.attn,
            )
        elif c.attn == "flash_attention_2":
            for gpu in ctx.gpus:
                rows = [r for r in ctx.knowledge.capabilities.amd if r.gfx_arch == gpu.gfx_arch]
                if gpu.gfx_arch and rows and not rows[0].flash_attention_2:
                    yield attn_hardware.finding(
                        Severity.FAIL, f"flash-attn has no ROCm kernel for {gpu.gfx_arch}",
                        detected=gpu.gfx_arch, required="gfx90a, gfx942 or gfx950", option=c.attn,
                    )
        return
    cc = ctx.weakest_cc
    if cc is None:
        return
    low = ComputeCapability.parse(req.min_compute_capability) if req.min_compute_capability else None
    high = ComputeCapability.parse(req.max_compute_capability) if req.max_compute_capability else None
    gpu_name = next((g.name for g in ctx.gpus if g.compute_capability == cc), "this GPU")
    if low is not None and cc < low:
        yield attn_hardware.finding(
            Severity.FAIL,
            f"{c.attn} needs compute capability >= {low}; {gpu_name} has {cc} "
            f"({ctx.knowledge.architecture_name(cc)})",
            detected=f"compute capability {cc}",
            required=f">= {low}",
            option=c.attn,
        )
    elif high is not None and (cc.major, 0) > (high.major, 0):
        yield attn_hardware.finding(
            Severity.FAIL,
            f"{c.attn} targets compute capability {high.major}.x; {gpu_name} has {cc}",
            detected=f"compute capability {cc}",
            required=f"{high.major}.x",
            option=c.attn,
        )


@rule("ATTN006", "attention kernel does not support this dtype", scope="candidate",
      fix='load in float16 or bfloat16 (dtype="bfloat16" on Ampere or newer), or use sdpa for float32')
def attn_dtype(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention kernels run only in fp16/bf16. transformers only warns when the model is fp32, and the
    kernel then fails with 'FlashAttention only support fp16 and bf16 data type'."""
    req = _requirement(ctx, c)
    if c is None or req is None:
        return
    if c.dtype not in req.dtypes:
        yield attn_dtype.finding(
            Severity.FAIL, f"{c.attn} does not run in {c.dtype}", detected=c.dtype,
            required=" or ".join(req.dtypes), option=c.attn,
        )


@rule("ATTN007", "head dimension outside the kernel's range", scope="candidate",
      fix='use attn_implementation="sdpa" (its memory-efficient and math kernels take any head size)')
def attn_head_dim(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention-2/3 compile head sizes up to 256 in multiples of 8; larger heads (e.g. 512) have no kernel."""
    req = _requirement(ctx, c)
    if c is None or req is None or ctx.model is None:
        return
    hd = ctx.model.head_dim
    if req.max_head_dim is not None and hd > req.max_head_dim:
        yield attn_head_dim.finding(
            Severity.FAIL, f"{c.attn} supports head_dim <= {req.max_head_dim}; this model has {hd}",
            detected=f"head_dim {hd}", required=f"<= {req.max_head_dim}", option=c.attn,
        )
    elif req.head_dim_multiple and hd % req.head_dim_multiple:
        yield attn_head_dim.finding(
            Severity.FAIL, f"{c.attn} needs head_dim to be a multiple of {req.head_dim_multiple}; this model has {hd}",
            detected=f"head_dim {hd}", required=f"multiple of {req.head_dim_multiple}", option=c.attn,
        )


@rule("ATTN008", "attention implementation newer than this transformers", scope="candidate",
      fix="upgrade transformers")
def attn_transformers(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Each implementation arrived in a given release: sdpa and flash_attention_2 in 4.36, flex_attention in 4.48,
    flash_attention_3 in 4.53. Older releases reject the name."""
    req = _requirement(ctx, c)
    tf = ctx.version("transformers")
    if c is None or req is None or req.min_transformers is None or tf is None:
        return
    if tf < Version(req.min_transformers):
        yield attn_transformers.finding(
            Severity.FAIL, f"{c.attn} needs transformers >= {req.min_transformers}",
            detected=f"transformers {tf}", required=f">= {req.min_transformers}",
            fix=f"pip install -U 'transformers>={req.min_transformers}'", option=c.attn,
        )


@rule("ATTN009", "attention implementation needs a newer torch", scope="candidate", fix="upgrade torch")
def attn_torch(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers uses SDPA only with torch >= 2.1.1, and flex_attention needs torch >= 2.5."""
    req = _requirement(ctx, c)
    tv = ctx.version("torch")
    if c is None or req is None or req.min_torch is None or tv is None:
        return
    if tv < Version(req.min_torch):
        yield attn_torch.finding(
            Severity.FAIL, f"{c.attn} needs torch >= {req.min_torch}", detected=f"torch {tv}",
            required=f">= {req.min_torch}", fix=f"pip install -U 'torch>={req.min_torch}'", option=c.attn,
        )


@rule("ATTN010", "FlashAttention-3 rejects ALiBi", scope="candidate", fix='use attn_implementation="sdpa"')
def fa3_alibi(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention-3 has no ALiBi support; transformers 4.57 raises for ALiBi models (BLOOM, MPT)."""
    if c is not None and c.attn == "flash_attention_3" and ctx.model is not None and ctx.model.alibi:
        yield fa3_alibi.finding(
            Severity.FAIL, f"{ctx.model.model_type} uses ALiBi, which FlashAttention-3 does not support",
            detected="alibi", required="rotary or learned positions", option=c.attn,
        )


@rule("ATTN011", "batched generation needs left padding", scope="candidate",
      fix='tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")')
def left_padding(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Decoder-only models generate from the last position: batched prompts must be left-padded, and
    FlashAttention-2 in particular rejects right padding during generation."""
    if c is None or ctx.model is None or ctx.batch <= 1 or not ctx.model.generative or ctx.model.is_encoder_decoder:
        return
    if c.attn.startswith("flash_attention"):
        yield left_padding.finding(
            Severity.INFO, f"with {c.attn} and batch {ctx.batch}, pad prompts on the left",
            detected=f"batch {ctx.batch}", required='padding_side="left"', option=c.attn,
        )


@rule("ATTN012", "SDPA will not use its flash kernel here", scope="candidate",
      fix="nothing to do: SDPA falls back to the memory-efficient or math kernel automatically")
def sdpa_backend(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """torch's SDPA flash kernel needs fp16/bf16, compute capability >= 8.0 and head_dim <= 256, and takes no
    attention mask; otherwise SDPA runs the memory-efficient kernel (or math), which is slower but correct."""
    if c is None or c.attn != "sdpa" or c.placement == "cpu" or ctx.torch is None:
        return
    flash = ctx.torch.sdpa_backends.get("flash")
    reasons = []
    if flash is not None and flash.usable is not True:
        reasons.append(flash.reason)
    if c.dtype == "float32":
        reasons.append("float32 inputs")
    if ctx.model is not None and ctx.model.head_dim > 256:
        reasons.append(f"head_dim {ctx.model.head_dim} > 256")
    if reasons:
        yield sdpa_backend.finding(
            Severity.INFO, "SDPA runs its memory-efficient/math kernel: " + "; ".join(reasons),
            detected="; ".join(reasons), required="fp16/bf16, CC >= 8.0, head_dim <= 256", option=c.attn,
        )


@rule("ATTN013", "flex_attention compiles on first use", scope="candidate",
      fix='prefer "sdpa" unless you need custom masks (flex_attention pays a torch.compile warm-up)')
def flex_compile(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """flex_attention is built by torch.compile: the first call compiles kernels (seconds to minutes) and each
    new shape may recompile."""
    if c is not None and c.attn == "flex_attention":
        yield flex_compile.finding(
            Severity.INFO, "flex_attention compiles kernels on first call; expect a slow first token",
            detected="flex_attention", required="", option=c.attn,
        )
