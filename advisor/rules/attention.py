"""ATTN rules: can this attn_implementation run this model on this machine?"""

from __future__ import annotations

from collections.abc import Iterator

from packaging.version import InvalidVersion, Version

from advisor.candidate import ATTENTION_IMPLS, ATTENTION_PACKAGES, Candidate
from advisor.facts import ComputeCapability
from advisor.findings import Finding, Severity
from advisor.knowledge import version_matches
from advisor.knowledge.notes import flex_cpu_records
from advisor.knowledge.schema import UNVERIFIED, AttentionRequirement, PackageLimit
from advisor.rules.base import Context, rule
from advisor.rules.kernel_requirements import outside, outside_range, runs_in

FLASH_PACKAGES = ATTENTION_PACKAGES  # the vocabulary's table (advisor.candidate)


def _requirement(ctx: Context, c: Candidate | None):  # type: ignore[no-untyped-def]
    return ctx.knowledge.attention_requirement(c.attn) if c is not None else None


def _impl(ctx: Context, c: Candidate) -> str:
    """The implementation behind the name: `paged|sdpa` is sdpa; `kernels-community/flash-attn2` is FA2's kernel."""
    return ctx.knowledge.impl_of(c.attn)[0]


def _without_sdpa(ctx: Context, rejected: str) -> str | None:
    """A fix naming implementations the model declares, where ATTN001's own fix would say sdpa and the model has
    no sdpa (Gemma-2 from transformers 5.21): a fix never recommends what the rule rejects. None: keep the fix."""
    if not ctx.support or ctx.support.get("sdpa", False):
        return None
    cls = ctx.model.architecture or ctx.model.model_type if ctx.model is not None else "this model"
    others = [i for i in ATTENTION_IMPLS if i not in ("eager", "sdpa", rejected) and ctx.support.get(i, False)]
    also = f" (or {', '.join(others)}, which it declares too)" if others else ""
    return f'use attn_implementation="eager"{also}: {cls} declares no sdpa in {ctx.support_source}'


def _package(ctx: Context, c: Candidate) -> str | None:
    """The flash distribution this name needs (None for Hub kernels, which need `kernels` instead)."""
    impl, hub = ctx.knowledge.impl_of(c.attn)
    return None if hub else FLASH_PACKAGES.get(impl)


@rule("ATTN001", "architecture does not implement this attention", scope="candidate", remedy="switch",
      fix='use attn_implementation="sdpa" (or "eager"), or upgrade transformers if a newer release adds support')
def arch_support(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers refuses an attn_implementation the model class does not declare
    (`_supports_sdpa`, `_supports_flash_attn`, `_supports_flex_attn`) with a ValueError at load time."""
    if c is None or ctx.model is None or _impl(ctx, c) == "eager":
        return
    impl = _impl(ctx, c)
    if impl not in ctx.knowledge.attention_impls:
        return  # an unknown Hub kernel: transformers only checks it when loading it
    if ctx.support and not ctx.support.get(impl, False):
        cls = ctx.model.architecture or ctx.model.model_type
        fix = None
        installed = ctx.env.version_of("transformers")
        if installed is not None:
            from advisor.knowledge.history import supported_since

            newer = supported_since(ctx.model.model_type, impl, installed, cache=ctx.cache)
            if newer is not None:
                fix = f"upgrade transformers to >= {newer} to get {c.attn} for {ctx.model.model_type} (pip install -U 'transformers>={newer}')"
        fix = fix or _without_sdpa(ctx, impl)
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
    if c is not None and ctx.knowledge.impl_of(c.attn)[1]:
        kernels = ctx.env.library("kernels")
        if not kernels.usable:
            yield flash_package.finding(
                Severity.FAIL, f"the Hub kernel {c.attn} is loaded through the `kernels` package, which is not installed",
                detected="kernels: not installed", required="kernels installed (in the window this transformers uses)",
                fix="pip install kernels (see LIB004 for the versions this transformers accepts)", option=c.attn,
            )
        return
    dist = _package(ctx, c) if c is not None else None
    if c is None or dist is None:
        return
    lib = ctx.env.library(dist)
    if lib.installed:
        return
    kernels = ctx.env.library("kernels")
    window = ctx.knowledge.constraints_for("kernels", ctx.versions())
    kernels_ok = kernels.usable and all(version_matches(kernels.version, w.specifier) for w in window)
    fallback = ctx.knowledge.releases.at("kernel_fallback", ctx.env.version_of("transformers"))
    repos = (fallback.value or {}).get(_impl(ctx, c)) if fallback is not None else None
    if kernels_ok and repos and fallback is not None:
        repo = repos["rocm" if ctx.rocm else "cuda"]
        yield flash_package.finding(
            Severity.WARN,
            f"{dist} is not installed; transformers will load the Hub kernel {repo} through `kernels` "
            f"(needs network access on first use; {fallback.cite()})",
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
    dist = _package(ctx, c) if c is not None else None
    if c is None or dist is None:
        return
    lib = ctx.env.library(dist)
    failure = ctx.env.kernel_failure(c.attn, c.dtype) if lib.installed else None
    if failure is not None:  # it was run on this GPU: that outranks the import check
        yield flash_broken.finding(
            Severity.FAIL,
            f"{lib.distribution} {lib.version} imports but its kernel does not run on this GPU: {failure}",
            detected=f"{lib.distribution} {lib.version}: a tiny attention call fails",
            required="a build whose kernel runs on this GPU",
            option=c.attn,
        )
    elif lib.installed and lib.importable is False:
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
    if c is None or _package(ctx, c) != "flash-attn":
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


@rule("ATTN005", "GPU too old or unsupported for this attention kernel", scope="candidate", remedy="switch",
      fix='use attn_implementation="sdpa": it picks the fastest kernel this GPU supports')
def attn_hardware(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention-2 needs compute capability >= 8.0 (Ampere); on a T4 or V100 the kernel raises
    'FlashAttention only supports Ampere GPUs or newer.' at the first forward pass, after a successful load.
    FlashAttention-3 needs 8.0 in its kernel, and transformers adds its own gate per release (CC >= 9 in 4.53-5.3,
    >= 8 from 5.4; FA4 >= 9). flex_attention compiles with Triton on GPUs, which refuses CC < 7.0. None of the
    flash kernels runs on the CPU."""
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
        elif (limit := _package_limit(ctx, c, "rocm")) is not None and limit[1].rocm is False:
            yield attn_hardware.finding(  # WARN: AMD's ROCm/flash-attention fork installs as flash-attn too
                Severity.WARN, f"upstream {req.package} {limit[0]} has no ROCm build ({_cite(req, limit[1].source)}); "
                               "only AMD's ROCm/flash-attention fork runs here",
                detected=f"{req.package} {limit[0]} on AMD GPU", required=f"{req.package}{_negate(limit[1].specifier)}",
                option=c.attn, fix=f"pip install -U '{req.package}{_negate(limit[1].specifier)}', or use sdpa",
            )
        elif _impl(ctx, c) == "flash_attention_2":
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
    gates = ctx.knowledge.releases.at("flash_cc_gates", ctx.env.version_of("transformers"))
    gate = (gates.value or {}).get(_impl(ctx, c)) if gates is not None else None
    if gates is not None and isinstance(gate, int) and cc.major < gate:
        gpu_name = next((g.name for g in ctx.gpus if g.compute_capability == cc), "this GPU")
        yield attn_hardware.finding(
            Severity.FAIL,
            f"transformers {ctx.env.version_of('transformers')} refuses {c.attn} below compute capability {gate}.0; "
            f"{gpu_name} has {cc} ({gates.cite()})",
            detected=f"compute capability {cc}",
            required=f">= {gate}.0",
            option=c.attn,
        )
        return
    gpu_name = next((g.name for g in ctx.gpus if g.compute_capability == cc), "this GPU")
    where = outside(req, cc)  # the one judge, shared with matrix --full (rules/kernel_requirements.py)
    if where == "below":
        yield attn_hardware.finding(
            Severity.FAIL,
            f"{c.attn} needs compute capability >= {req.min_compute_capability}; {gpu_name} has {cc} "
            f"({ctx.knowledge.architecture_name(cc)})",
            detected=f"compute capability {cc}",
            required=f">= {req.min_compute_capability}",
            option=c.attn,
        )
    elif where == "above":
        high = ComputeCapability.parse(str(req.max_compute_capability))
        top = f"{high.major}.x" if cc.major > high.major else str(high)
        yield attn_hardware.finding(
            Severity.FAIL,
            f"{c.attn} targets compute capability {top}; {gpu_name} has {cc}",
            detected=f"compute capability {cc}",
            required=top,
            option=c.attn,
        )
    else:
        limit = _package_limit(ctx, c, "max_compute_capability")
        if limit is not None:
            version, row = limit
            high = ComputeCapability.parse(str(row.max_compute_capability))
            if outside_range(cc, None, row.max_compute_capability) == "above":
                top = f"{high.major}.x" if cc.major > high.major else str(high)
                yield attn_hardware.finding(
                    Severity.FAIL,
                    f"{req.package} {version} accepts compute capability up to {top} only; {gpu_name} has "
                    f"{cc} ({_cite(req, row.source)})",
                    detected=f"{req.package} {version}, compute capability {cc}",
                    required=f"{req.package}{_negate(row.specifier)}", option=c.attn,
                    fix=f"pip install -U '{req.package}{_negate(row.specifier)}', or use sdpa",
                )


def _cite(req: AttentionRequirement, source: str) -> str:
    """A kernel limit's source, marked where no run of ours showed it (issue 28)."""
    return source if req.verified else f"{UNVERIFIED}; {source}"


def _negate(specifier: str) -> str:
    """'<2.7.3' -> '>=2.7.3': the releases a package limit does not hold for."""
    return ">=" + specifier[1:] if specifier.startswith("<") and not specifier.startswith("<=") else f" outside {specifier}"


def _package_limit(ctx: Context, c: Candidate, field: str) -> tuple[str, PackageLimit] | None:
    """(installed version, limit row) when the installed kernel package is a release a `field` limit holds for."""
    req = _requirement(ctx, c)
    if req is None or not req.package or _package(ctx, c) is None:
        return None
    lib = ctx.env.library(req.package)
    if not lib.installed or not lib.version:
        return None
    for row in req.package_limits:
        if getattr(row, field) is not None and version_matches(lib.version, row.specifier):
            return lib.version, row
    return None


@rule("ATTN006", "attention kernel does not support this dtype", scope="candidate", remedy="switch",
      fix='load in float16 or bfloat16 (dtype="bfloat16" on Ampere or newer), or use sdpa for float32')
def attn_dtype(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention kernels run only in fp16/bf16. transformers only warns when the model is fp32, and the
    kernel then fails with 'FlashAttention only support fp16 and bf16 data type'."""
    req = _requirement(ctx, c)
    if c is None or req is None:
        return
    if not runs_in(req, c.dtype):
        yield attn_dtype.finding(
            Severity.FAIL, f"{c.attn} does not run in {c.dtype}", detected=c.dtype,
            required=" or ".join(req.dtypes), option=c.attn,
        )


@rule("ATTN007", "head dimension outside the kernel's range", scope="candidate", remedy="switch",
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
    elif (cc := ctx.weakest_cc) is not None and c.placement != "cpu":
        for limit in req.cc_head_dims:  # issue 29: flash-attn-4 takes <= 128 on SM100/SM110 (bar 256)
            low = ComputeCapability.parse(limit.min_compute_capability)
            high = ComputeCapability.parse(limit.max_compute_capability)
            if low.major <= cc.major <= high.major and hd > limit.max_head_dim and hd not in limit.also:
                allowed = f"<= {limit.max_head_dim}" + "".join(f" or {d}" for d in limit.also)
                yield attn_head_dim.finding(
                    Severity.FAIL, f"{c.attn} supports head_dim {allowed} on compute capability {cc}; this model has "
                                   f"{hd} ({_cite(req, limit.source)})",
                    detected=f"head_dim {hd} on compute capability {cc}", required=allowed, option=c.attn,
                )


@rule("ATTN008", "attention implementation newer than this transformers", scope="candidate",
      fix="upgrade transformers")
def attn_transformers(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Each release accepts its own set of names (read from its modeling_utils.py): sdpa and flash_attention_2 by
    4.36, flex_attention from 4.47, flash_attention_3 from 4.53, flash_attention_4 from 5.4, the `paged|` prefix from
    5.0, and Hub kernels (`org/repo[:function]`) from 4.52. Older releases reject the name with a ValueError."""
    target = ctx.env.version_of("transformers")
    if c is None or target is None:
        return
    releases = ctx.knowledge.releases
    accepted, run = releases.accepts(c.attn, target)
    first = releases.first_accepting(c.attn)
    if run is None and first is not None and _impl(ctx, c) != "eager":  # older than every stored release
        try:
            older = Version(target) < Version(first.first)
        except InvalidVersion:
            older = False
        if older:
            yield attn_transformers.finding(
                Severity.FAIL, f"{c.attn} needs transformers >= {first.first} ({first.cite(c.attn)})",
                detected=f"transformers {target}", required=f">= {first.first}",
                fix=f"pip install -U 'transformers>={first.first}'", option=c.attn,
            )
        return
    if accepted or run is None:
        return
    need = f">= {first.first}" if first is not None else "a release that accepts it"
    fix = f"pip install -U 'transformers>={first.first}'" if first is not None else "upgrade transformers"
    yield attn_transformers.finding(
        Severity.FAIL, f"transformers {target} does not accept attn_implementation={c.attn!r} ({run.cite(c.attn)})",
        detected=f"transformers {target}", required=need, fix=fix, option=c.attn,
    )


@rule("ATTN009", "attention implementation needs a newer torch", scope="candidate", fix="upgrade torch")
def attn_torch(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Each transformers release sets its own torch minimum for SDPA (2.1.1 in 4.36) and flex_attention (2.5.0 from
    4.47), read from its `is_torch_sdpa_available` / `is_torch_flex_attn_available` (data/release_constraints.json)."""
    fact = {"sdpa": "sdpa_torch_min", "flex_attention": "flex_torch_min"}.get(_impl(ctx, c)) if c is not None else None
    tv = ctx.version("torch")
    if c is None or fact is None or tv is None:
        return
    run = ctx.knowledge.releases.at(fact, ctx.env.version_of("transformers"))
    req = _requirement(ctx, c)
    minimum = run.value if run is not None else (req.min_torch if req is not None else None)
    where = f" ({run.cite()})" if run is not None else ""
    if minimum and tv < Version(minimum):
        yield attn_torch.finding(
            Severity.FAIL, f"{c.attn} needs torch >= {minimum}{where}", detected=f"torch {tv}",
            required=f">= {minimum}", fix=f"pip install -U 'torch>={minimum}'", option=c.attn,
        )


@rule("ATTN010", "FlashAttention-3 rejects ALiBi", scope="candidate", remedy="switch", fix='use attn_implementation="sdpa"')
def fa3_alibi(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """FlashAttention-3 has no ALiBi support; transformers 4.57 raises for ALiBi models (BLOOM, MPT)."""
    if c is not None and _impl(ctx, c) == "flash_attention_3" and ctx.model is not None and ctx.model.alibi:
        yield fa3_alibi.finding(
            Severity.FAIL, f"{ctx.model.model_type} uses ALiBi, which FlashAttention-3 does not support",
            detected="alibi", required="rotary or learned positions", option=c.attn,
        )


@rule("ATTN015", "attention softcapping with a flash-attn that lacks it", scope="candidate",
      fix="pip install -U 'flash-attn>=2.6.0' --no-build-isolation, or use attn_implementation=\"eager\"")
def flash_softcap(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Gemma-2 caps its attention logits; flash-attn has the `softcap` argument from 2.6.0. Below it, transformers
    4.43-4.46 and 4.55-5.20 drop the cap without a word (the model then computes other logits than it was trained
    with), 4.48-4.54 raise TypeError at the first forward (4.47 fails there whatever the flash-attn), and 5.21+
    refuses: each executed with a flash-attn 2.5.9 stand-in on the CPU (data/softcap.json)."""
    if c is None or _package(ctx, c) != "flash-attn" or ctx.model is None:
        return
    text = ctx.model.config.get("text_config") or {}
    cap = ctx.model.config.get("attn_logit_softcapping") or (text.get("attn_logit_softcapping")
                                                             if isinstance(text, dict) else None)
    lib = ctx.env.library("flash-attn")
    if not cap or not lib.installed or not lib.version:
        return
    from advisor.knowledge.softcap import softcap_table

    table = softcap_table()
    if version_matches(lib.version, f">={table.flash_attn_min}"):
        return
    target = ctx.env.version_of("transformers")
    row = table.at(target)
    if row is None:
        return
    yield flash_softcap.finding(
        Severity.FAIL, f"{ctx.model.model_type} caps attention logits at {cap}, which flash-attn {lib.version} cannot "
                       f"(softcap from {table.flash_attn_min}); transformers {target} {row.message} ({row.cite()})",
        detected=f"flash-attn {lib.version}, attn_logit_softcapping {cap}", required=f"flash-attn>={table.flash_attn_min}",
        option=c.attn,
    )


@rule("ATTN011", "batched generation needs left padding", scope="candidate",
      fix='tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")')
def left_padding(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Decoder-only models generate from the last position: batched prompts must be left-padded. transformers
    does not reject right padding: generate() warns ('right-padding was detected', generation/utils.py) and the
    output is wrong; with FlashAttention's unpadded kernels the mistake is easy to miss."""
    if c is None or ctx.model is None or ctx.batch <= 1 or not ctx.model.generative or ctx.model.is_encoder_decoder:
        return
    if _impl(ctx, c).startswith("flash_attention"):
        run = ctx.knowledge.releases.at("right_padding", ctx.env.version_of("transformers"))
        said = f"; transformers only warns on right padding ({run.cite()})" if run is not None and run.value else ""
        yield left_padding.finding(
            Severity.INFO, f"with {c.attn} and batch {ctx.batch}, pad prompts on the left{said}",
            detected=f"batch {ctx.batch}", required='padding_side="left"', option=c.attn,
        )


@rule("ATTN012", "SDPA will not use its flash kernel here", scope="candidate",
      fix="nothing to do: SDPA falls back to the memory-efficient or math kernel automatically")
def sdpa_backend(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """torch's SDPA flash kernel needs fp16/bf16, a GPU in its compute-capability range (sm80-sm90 in torch 2.5
    and 2.6, up to sm120 in 2.7), head_dim <= 256, and no attention mask (a padded batch passes one); otherwise SDPA runs
    the memory-efficient kernel (or math), which is slower but correct. The limits per torch release are read
    from each release's own wheel (data/sdpa_backends.json)."""
    if c is None or _impl(ctx, c) != "sdpa" or c.placement == "cpu" or ctx.torch is None:
        return
    from advisor.knowledge.sdpa import SdpaLimit, sdpa_limit

    torch = ctx.version("torch")
    root = ctx.knowledge.root
    flash = ctx.torch.sdpa_backends.get("flash")
    reasons: list[str] = []
    used: list[SdpaLimit] = []
    ran = ctx.env.kernel_runs_ok("sdpa_flash")
    if ran is False:  # run on this GPU: outranks torch's own availability flag
        reasons.append(f"its flash kernel failed a test call: {ctx.env.kernel_failure('sdpa_flash', c.dtype)}")
    elif flash is not None and flash.usable is not True and ran is None:
        reasons.append(flash.reason)  # the compute-capability range per torch release (advisor.probe.torch_info)
    if c.dtype == "float32":  # the dtype lists are arrays in sdp_utils.cpp, not text in the binary: read at main
        reasons.append("float32 inputs (the flash kernel takes fp16/bf16: sdp_utils.cpp check_dtypes_low_precision)")
    head = sdpa_limit(root, "flash", "max_head_dim", str(torch) if torch else None)
    if ctx.model is not None and head is not None and ctx.model.head_dim > int(head.value):
        reasons.append(f"head_dim {ctx.model.head_dim} > {head.value} ({head.cite()})")
        used.append(head)
    mask = sdpa_limit(root, "flash", "no_attn_mask", str(torch) if torch else None)
    if ctx.batch > 1 and mask is not None and mask.value:
        reasons.append(f"a padded batch of {ctx.batch} passes an attention mask, which the flash kernel does not take "
                       f"({mask.cite()})")
        used.append(mask)
    if reasons:
        unverified = f" (unverified for torch {torch}: no wheel of that release was checked)" if any(
            not u.verified for u in used) else ""
        yield sdpa_backend.finding(
            Severity.INFO, "SDPA runs its memory-efficient/math kernel: " + "; ".join(reasons) + unverified,
            detected="; ".join(reasons), required="fp16/bf16, CC in the flash range, head_dim <= 256, no mask",
            option=c.attn,
        )


@rule("ATTN013", "flex_attention compiles on first use", scope="candidate",
      fix='prefer "sdpa" unless you need custom masks (flex_attention pays a torch.compile warm-up)')
def flex_compile(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """flex_attention is built by torch.compile: the first call compiles kernels (seconds to minutes) and each
    new shape may recompile."""
    failure = ctx.env.kernel_failure("flex_attention", c.dtype) if c is not None and c.placement != "cpu" else None
    if c is not None and _impl(ctx, c) == "flex_attention" and failure is not None:
        yield flex_compile.finding(  # the probe compiled and ran it on this GPU, and that failed
            Severity.FAIL, f"flex_attention failed to compile or run on this GPU: {failure}",
            detected="flex_attention: a tiny compiled call fails", required="the compiled kernel runs", option=c.attn,
        )
    elif c is not None and _impl(ctx, c) == "flex_attention":
        yield flex_compile.finding(
            Severity.INFO, "flex_attention compiles kernels on first call; expect a slow first token",
            detected="flex_attention", required="", option=c.attn,
        )


@rule("ATTN014", "flex_attention on the CPU is not shown to compile", scope="candidate",
      fix='on the CPU use attn_implementation="sdpa"')
def flex_cpu(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """On the CPU, flex_attention is compiled by Inductor into C++. With torch 2.13 a padded batch compiles for a
    forward pass but generate() fails with 'CppCompileError: C++ compile error' (reproduced by
    benchmarks/flex_cpu_compile.py on a tiny Llama, data/flex_cpu/torch-2.13.0.json). The advisor offers flex on the
    CPU only for a torch release with a record showing every case compiled."""
    if c is None or c.placement != "cpu" or _impl(ctx, c) != "flex_attention":
        return
    torch = ctx.version("torch")
    if torch is None:
        return
    record = flex_cpu_records(ctx.knowledge.root).get(str(torch))
    if record is not None and record.get("compiles") is True:
        return
    if record is None:
        message = f"flex_attention has not been shown to compile on the CPU with torch {torch} (no record in data/flex_cpu/)"
    else:
        runs: list[dict[str, object]] = list(record.get("runs", []))  # type: ignore[call-overload]
        failed = [r for r in runs if not r.get("compiles")]
        first: dict[str, object] = failed[0] if failed else {}
        message = (
            f"flex_attention fails to compile on the CPU with torch {torch}: {first.get('dtype')} "
            f"{'padded ' if first.get('padded') else ''}{first.get('mode')} raised {first.get('error')} "
            f"({record['file']})"
        )
    yield flex_cpu.finding(Severity.FAIL, message, detected=f"torch {torch}, CPU", required="a torch shown to compile it",
                           option=c.attn)
