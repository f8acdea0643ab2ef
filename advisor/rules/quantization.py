"""QUANT rules: can bitsandbytes 8-bit / 4-bit loading, or another quantization method, work on this target?"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from advisor.candidate import Candidate
from advisor.facts import ComputeCapability
from advisor.findings import Finding, Severity
from advisor.knowledge import version_matches
from advisor.rules.base import Context, rule

if TYPE_CHECKING:
    from advisor.knowledge.quant_methods import Method
    from advisor.knowledge.quantizer_acceptance import QuantizerVerdict


def _quantized(c: Candidate | None) -> bool:
    """A bitsandbytes candidate (the other methods are judged by QUANT008)."""
    return c is not None and c.quantization in ("8bit", "4bit")


@rule("QUANT001", "bitsandbytes missing", scope="candidate", fix="pip install -U bitsandbytes")
def bnb_missing(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """8-bit and 4-bit loading go through bitsandbytes; transformers raises at load time without it."""
    if _quantized(c) and not ctx.env.library("bitsandbytes").installed:
        assert c is not None
        yield bnb_missing.finding(
            Severity.FAIL, f"{c.quantization} loading needs bitsandbytes, which is not installed",
            detected="bitsandbytes: not installed", required="bitsandbytes installed", option=c.quantization,
        )


@rule("QUANT002", "bitsandbytes native library does not load", scope="candidate",
      fix="install the bitsandbytes wheel for your platform (pip install --force-reinstall bitsandbytes); "
          "`python -m bitsandbytes` shows what is wrong")
def bnb_broken(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """`import bitsandbytes` succeeds even without its compiled library (a mock stands in and fails at the first
    quantized matmul), so the probe loads the native library in a child process."""
    lib = ctx.env.library("bitsandbytes")
    kernel = "bitsandbytes_int8" if c is not None and c.quantization == "8bit" else "bitsandbytes_nf4"
    failure = ctx.env.kernel_failure(kernel, c.dtype) if _quantized(c) and lib.installed else None
    if failure is not None:  # a real matmul on this GPU failed: outranks the library load
        assert c is not None
        yield bnb_broken.finding(
            Severity.FAIL, f"bitsandbytes {lib.version} loads but its {c.quantization} matmul fails here: {failure}",
            detected=f"{kernel}: a tiny matmul fails", required="the matmul runs", option=c.quantization,
        )
    elif _quantized(c) and lib.installed and lib.importable is False:
        assert c is not None
        yield bnb_broken.finding(
            Severity.FAIL, f"bitsandbytes {lib.version} is installed but its native library does not load: {lib.error}",
            detected=f"backend {lib.details.get('backend', '?')}, native library {lib.details.get('native_library', '?')}",
            required="native library loaded", option=c.quantization,
        )


@rule("QUANT003", "bitsandbytes too old for this transformers", scope="candidate",
      fix="pip install -U bitsandbytes")
def bnb_version(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers 5.x needs bitsandbytes >= 0.46.1 (it reads `bitsandbytes.supported_torch_devices`)."""
    lib = ctx.env.library("bitsandbytes")
    if not _quantized(c) or not lib.installed:
        return
    assert c is not None
    for row in ctx.knowledge.constraints_for("bitsandbytes", ctx.versions()):
        if not version_matches(lib.version, row.specifier):
            yield bnb_version.finding(
                Severity.FAIL, row.message, detected=f"bitsandbytes {lib.version}",
                required=f"bitsandbytes{row.specifier}", fix=row.fix, option=c.quantization,
            )


@rule("QUANT004", "bitsandbytes on this device", scope="candidate", remedy="switch",
      fix="quantize on a CUDA GPU, or keep the model unquantized on the CPU")
def bnb_device(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Which devices a bitsandbytes release supports is its own fact, read at its tags (data/bitsandbytes.json):
    its wheel runs on the CPU from 0.46 (executed from the wheels; the rows cite the run), officially from 0.48, far
    slower than a GPU, and 0.46.1's 4-bit load fails to convert on the CPU; ROCm libraries are loaded from 0.46, a
    preview until 0.50; on NVIDIA, compute capability >= 5.0 for 0.45-0.47 and >= 6.0 from 0.48."""
    if not _quantized(c):
        return
    assert c is not None
    from advisor.knowledge.bitsandbytes import bnb_fact

    lib = ctx.env.library("bitsandbytes")
    version = lib.version if lib.installed and lib.version else None
    named = f"bitsandbytes {version}" if version else "bitsandbytes"
    if c.placement == "cpu":
        row = bnb_fact(ctx.knowledge.root, "cpu", version)
        if row is not None and row.value == "none":
            yield bnb_device.finding(
                Severity.FAIL, f"{named} has no CPU backend in its release: {row.note} ({row.cite()})",
                detected=f"{named} on CPU", required="bitsandbytes >= 0.46 for CPU", fix="pip install -U bitsandbytes",
                option=c.quantization,
            )
            return
        four = bnb_fact(ctx.knowledge.root, "cpu_4bit_load", version) if c.quantization == "4bit" else None
        if four is not None and four.value == "none":
            yield bnb_device.finding(
                Severity.FAIL, f"{named} does not load 4-bit on the CPU: {four.note} ({four.cite()})",
                detected=f"{named} 4bit on CPU", required="bitsandbytes >= 0.47 for 4-bit on CPU",
                fix="pip install -U bitsandbytes", option=c.quantization,
            )
        elif row is not None and row.value == "preview":
            yield bnb_device.finding(
                Severity.WARN, f"{named} runs on the CPU before its official CPU backend (0.48; {row.cite()}), much "
                               "slower than unquantized float32 when memory allows",
                detected=f"{named} on CPU", required=">= 0.48 for the official backend", option=c.quantization,
            )
        else:
            yield bnb_device.finding(
                Severity.WARN, "bitsandbytes on the CPU is much slower than unquantized float32 when memory allows",
                detected="CPU", required="a CUDA GPU for speed", option=c.quantization,
            )
        return
    if ctx.rocm:
        row = bnb_fact(ctx.knowledge.root, "rocm", version)
        if row is not None and row.value == "none":
            yield bnb_device.finding(
                Severity.FAIL, f"{named} has no ROCm library: {row.note} ({row.cite()})",
                detected=f"{named} on ROCm", required="bitsandbytes >= 0.46 (official from 0.50)",
                fix="pip install -U bitsandbytes", option=c.quantization,
            )
        elif row is not None and row.value == "preview":
            yield bnb_device.finding(
                Severity.WARN, f"{named} ROCm support is a preview (official from 0.50; {row.cite()})",
                detected=f"{named} on ROCm", required=">= 0.50", option=c.quantization,
            )
        return
    cc = ctx.weakest_cc
    row = bnb_fact(ctx.knowledge.root, "cuda_min_cc", version)
    if cc is None or row is None:
        return
    minimum = ComputeCapability.parse(row.value)
    if cc < minimum:
        yield bnb_device.finding(
            Severity.FAIL, f"{named} needs compute capability >= {minimum}; this GPU has {cc} ({row.cite()})",
            detected=f"compute capability {cc}", required=f">= {minimum}", option=c.quantization,
        )


@rule("QUANT005", "LLM.int8 without int8 tensor cores", scope="candidate", remedy="switch",
      fix="use 4-bit NF4 on this GPU, or a GPU with compute capability >= 7.5")
def int8_slow(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """LLM.int8 uses int8 tensor cores from compute capability 7.5 (bitsandbytes' `has_imma`); below it (V100,
    P100) bitsandbytes warns 'Only slow 8-bit matmul is supported for your GPU' and casts weights for every
    matmul (data/bitsandbytes.json int8_fast_cc)."""
    if c is None or c.quantization != "8bit" or c.placement == "cpu" or ctx.rocm:
        return
    from advisor.knowledge.bitsandbytes import bnb_fact

    lib = ctx.env.library("bitsandbytes")
    row = bnb_fact(ctx.knowledge.root, "int8_fast_cc", lib.version if lib.installed else None)
    cc = ctx.weakest_cc
    if cc is None or row is None:
        return
    minimum = ComputeCapability.parse(row.value)
    if cc < minimum:
        yield int8_slow.finding(
            Severity.WARN, f"LLM.int8 on compute capability {cc} runs the slow 8-bit path ({row.cite()})",
            detected=f"compute capability {cc}", required=f">= {minimum} for int8 tensor cores", option=c.quantization,
        )


@rule("QUANT006", "accelerate missing or too old", scope="candidate", fix="pip install -U accelerate")
def accelerate_needed(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers needs accelerate for any `device_map` and for bitsandbytes loading
    (>= 1.1.0 in v5, >= 0.26.0 in v4)."""
    if c is None or (c.placement == "cpu" and c.quantization == "none"):
        return  # plain CPU loading needs no device_map
    lib = ctx.env.library("accelerate")
    option = c.quantization if c.quantization != "none" else "device_map"
    if not lib.installed:
        yield accelerate_needed.finding(
            Severity.FAIL, "device_map placement and quantized loading need accelerate, which is not installed",
            detected="accelerate: not installed", required="accelerate installed", option=option,
        )
        return
    for row in ctx.knowledge.constraints_for("accelerate", ctx.versions()):
        if not version_matches(lib.version, row.specifier):
            yield accelerate_needed.finding(
                Severity.FAIL, row.message, detected=f"accelerate {lib.version}", required=f"accelerate{row.specifier}",
                fix=row.fix, option=option,
            )


@rule("QUANT007", "bitsandbytes would quantize little of this model", scope="candidate",
      fix="a method that quantizes this architecture (see the message), or spread bf16 over more GPUs")
def bnb_share(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers 5.5+ replaces only modules whose type is exactly `nn.Linear` (or `Conv1D`):
    `isinstance(module, Conv1D) or type(module) is nn.Linear` in `integrations/bitsandbytes.py` (line 184 in 5.5.4,
    189 from 5.10); 4.x and 5.0-5.4 took any `nn.Linear` subclass (`isinstance`, 4.57.6 line 167, 5.4.0 line 184).
    A subclass such as falcon's `FalconLinear` (5.5+), and the fused 3-D expert parameters of the 5.x
    mixture-of-experts models, stay in the compute dtype without an error. The share is the target release's:
    the model class built on the meta device for the installed release, `data/quantizable_share.json` (generated
    per release, each with its own rule's file and line) for another; below 60% of the non-embedding weights
    the 8-bit / 4-bit candidate is rejected as not worth loading. A target release the table does not cover is
    a warning, with the releases it does."""
    model = ctx.model
    if not _quantized(c) or model is None:
        return
    assert c is not None
    from advisor.candidate import BYTES
    from advisor.knowledge.quantizable_share import covered_release, kind_of, rule_at, table_releases
    from advisor.numbers import GiB
    from advisor.rules.method_readiness import fixes_for

    target = ctx.env.version_of("transformers")
    release = model.quantizable_release or target or "?"
    if target is not None and covered_release(target) is None:
        stored = table_releases()
        span = f"{stored[0]} to {stored[-1]} ({len(stored)} releases)" if stored else "no release"
        said = (f"; under transformers {release} it would quantize little: {model.quantizable_note}"
                if model.quantizable_note else "")
        yield bnb_share.finding(
            Severity.WARN,
            f"which weights bitsandbytes quantizes is unknown for transformers {target} (the table covers "
            f"{span}, and {target} is not installed here); the weight figure uses transformers {release}'s "
            f"replacement rule{said}",
            detected=f"transformers {target}", required="a release in the table, or installed here",
            fix=f"plan on a machine with transformers {target} installed (the advisor reads its rule there), or "
                "with a release the table covers (--assume transformers==X)", option=c.quantization,
        )
        return
    if model.quantizable_note is None:
        return
    share = model.quantizable_param_count / model.param_count if model.param_count else 0.0
    left = (model.param_count - model.quantizable_param_count) * BYTES[c.dtype]
    rule = rule_at(release)
    where = f" ({rule.file.removeprefix('transformers/')}:{rule.line}: `{rule.text}`)" if rule else ""
    fixes = fixes_for(kind_of(model.quantizable_note), model.model_type, ctx.env, ctx.weakest_cc, cache=ctx.cache)
    more = "spread the unquantized model over more GPUs (device_map='auto')"
    yield bnb_share.finding(
        Severity.FAIL,
        f"bitsandbytes would quantize only {share:.0%} of this model's weights in transformers {release}: "
        f"{model.quantizable_note}; {left / GiB:.1f} GiB of its weights would stay in {c.dtype}",
        detected=f"{model.quantizable_param_count / 1e9:.2f}B of {model.param_count / 1e9:.2f}B parameters in "
                 f"modules bitsandbytes replaces{where}",
        required="most weights in exact nn.Linear / Conv1D modules",
        fix="; or ".join([*fixes[:3], more]), option=c.quantization,
    )


@rule("QUANT008", "quantization method cannot run here or would quantize little", scope="candidate",
      fix="install what the method needs, or use the other method or transformers release the message names "
          "(`advisor doctor` lists them)")
def method_usable(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A method other than bitsandbytes (quanto, HQQ, fine-grained FP8, FBGEMM FP8) is planned only where its
    libraries are installed at the version transformers' `validate_environment` asks for, the compute capability
    is met and a GPU is there when it needs one (data/quant_methods.json, each fact with its transformers file
    and line), and, for fine-grained FP8 from transformers 5.4, where `kernels` (in the release's window) and the
    Hub kernel `kernels-community/finegrained-fp8` are usable: cached locally, or `--allow-download` (a warning;
    advisor/rules/fp8_kernel.py, data/release_constraints.json `fp8_hub_kernel`), and only where the target's transformers
    quantizes the method while loading: 5.x asks the quantizer for `get_quantize_ops` (core_model_loading.py), which
    HQQ's does not define in any 5.x release, so `HfQuantizer.get_quantize_ops` raises NotImplementedError (the
    fix names methods that do run there, or 4.57.6's old path; advisor/knowledge/onthefly.py, data/release_constraints.json
    `onthefly_<method>`). It fails too when the model's weights are in modules the method does not replace: an `nn.Linear`
    subclass for an exact-type rule (FP8), fused 3-D experts for a per-linear method (quanto, HQQ)."""
    if c is None or c.quantization in ("none", "8bit", "4bit"):
        return
    from advisor.knowledge.quant_methods import handles, method_for, table_release
    from advisor.knowledge.quantizable_share import kind_of
    from advisor.rules.method_readiness import fixes_for, method_status

    method = method_for(c.quantization)
    if method is None:
        return
    status = method_status(ctx.env, method, ctx.weakest_cc, allow_download=ctx.allow_download, cache=ctx.cache)
    problems = status.blockers(ctx.weakest_cc, c.placement)
    src = f"{'' if method.verified else 'unverified: read from '}transformers {table_release()} {method.source.split(' ')[0]}"
    kernel = status.kernel
    if kernel is not None and not kernel.ok:  # the release loads a Hub kernel for it (advisor/rules/fp8_kernel.py)
        src += f"; {kernel.cite}"
    if status.onthefly is not None and not status.loads:  # installing anything cannot help: another method or release
        from advisor.rules.method_readiness import onthefly_alternatives

        src = status.onthefly.cite
        fix = "; or ".join(onthefly_alternatives(ctx.env, ctx.weakest_cc, status.onthefly, c.placement, cache=ctx.cache)) or \
            "a transformers release that quantizes it while loading"
        yield method_usable.finding(
            Severity.FAIL, f"{method.name} cannot run here: {'; '.join(problems)}",
            detected=f"transformers {status.onthefly.release}", required="a quantizer that quantizes while loading",
            fix=fix, option=c.quantization,
        )
        return
    if problems:
        fix = " && ".join(status.fixes) or "a target it runs on"
        yield method_usable.finding(
            Severity.FAIL, f"{method.name} cannot run here: {'; '.join(problems)} ({src})",
            detected="; ".join(problems), required=status.needs(), fix=fix, option=c.quantization,
        )
        return
    if kernel is not None:
        for warning in kernel.warnings:
            yield method_usable.finding(Severity.WARN, f"{method.name}: {warning} ({kernel.cite})", detected=warning,
                                        required=status.needs(), option=c.quantization)
    model = ctx.model
    kind = kind_of(model.quantizable_note) if model is not None and model.quantizable_note else None
    if kind is not None and not handles(method, kind):
        assert model is not None
        better = fixes_for(kind, model.model_type, ctx.env, ctx.weakest_cc, cache=ctx.cache)
        yield method_usable.finding(
            Severity.FAIL, f"{method.name} would quantize little of this model: {model.quantizable_note if model else ''}"
                           f" ({method.rule_source} in transformers {table_release()})",
            detected=kind, required="a method that replaces these modules", option=c.quantization,
            fix="; or ".join([*better[:2], "spread the unquantized model over more GPUs (device_map='auto')"]),
        )


@rule("QUANT009", "pre-quantized checkpoint", scope="candidate",
      fix="install what the checkpoint's method needs (the message names it), and load it without a "
          "quantization_config of your own")
def checkpoint_method(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A checkpoint whose config.json has a `quantization_config` (GPTQ, AWQ, bitsandbytes, FP8, MXFP4,
    compressed-tensors ...) loads through that method's quantizer whatever from_pretrained is given: its
    `validate_environment` needs the method's libraries (data/quant_methods.json, with the file and line), and a
    `quantization_config` of another class raises ValueError ("The model is quantized with GPTQConfig but you are
    passing a BitsAndBytesConfig config", `AutoHfQuantizer.merge_quantization_configs`, quantizers/auto.py:259-266
    in 5.24.0; one of the same class is replaced by the checkpoint's). So such a model is planned without a
    quantization of its own, weighed at the bits its config states (advisor/model/prequantized.py). Whether the
    target's transformers loads it here is that release's own answer, executed: its quantizer's
    `validate_environment` and `update_dtype` run under this target's conditions (CUDA or not, the compute
    capability, which of the method's packages are installed; data/quantizer_acceptance.json, a newer installed
    release run once here). Refused is a failure with the release's error and the installs that make it load
    (GPTQ: auto-gptq to 4.48, either backend 4.49-4.57, gptqmodel only in 5.x; AWQ: autoawq in 4.x, gptqmodel in
    5.x); dequantized (FP8 in 5.x without a GPU or below
    compute capability 8.9, MXFP4 without triton or kernels, ...) is a warning and the plan weighs the weights
    unquantized; a dtype its update_dtype changes (AWQ's bfloat16 to float16 on a GPU) warns. A release the run does
    not cover is unknown, never another release's answer; a case the run left undecided falls back to the
    requirements read from source (data/quant_methods.json), said to be unverified."""
    pre = ctx.model.checkpoint_quantization if ctx.model is not None else None
    if c is None or pre is None:
        return
    if c.quantization != "none":
        yield checkpoint_method.finding(
            Severity.FAIL, f"the checkpoint is already quantized ({pre.label}, its config.json's quantization_config): "
                           "transformers raises ValueError for a quantization_config of another class and uses the "
                           "checkpoint's own otherwise (quantizers/auto.py:259-266 in 5.24.0)",
            detected=f"checkpoint: {pre.quant_method}", required="no quantization_config of your own",
            fix="load it as it is: drop --quantize and quantization_config", option=c.quantization,
        )
        return
    from advisor.knowledge.quant_methods import method_row, table_release
    from advisor.knowledge.quantizer_acceptance import Unknown
    from advisor.rules.method_readiness import checkpoint_verdict, method_status

    method = method_row(pre.method_key)
    verdict = checkpoint_verdict(ctx.env, pre.method_key, c.placement, ctx.weakest_cc, cache=ctx.cache)
    if method is None and verdict is None:
        yield checkpoint_method.finding(
            Severity.WARN, f"the checkpoint is quantized with {pre.quant_method!r}, which data/quant_methods.json does "
                           "not cover: its libraries and GPU needs are not checked",
            detected=f"checkpoint: {pre.quant_method}", required="a method the advisor knows",
            fix=f"see transformers' quantization docs for {pre.quant_method}", option="none",
        )
    elif isinstance(verdict, Unknown):  # never another release's row
        yield checkpoint_method.finding(
            Severity.WARN, f"{pre.label}: whether this target loads it is {verdict.why}",
            detected=f"transformers {verdict.release}", required="a release the advisor executed, or installed here",
            fix="plan on the machine with that transformers installed (its quantizer is run there)", option=c.dtype,
        )
    elif verdict is not None:
        yield from _executed_checkpoint(ctx, c, pre.label, pre.quant_method, verdict, method)
    else:  # the run did not decide it here (or no capability is known): the requirements read from source
        assert method is not None
        status = method_status(ctx.env, method, ctx.weakest_cc, allow_download=ctx.allow_download, cache=ctx.cache)
        problems = status.blockers(ctx.weakest_cc, c.placement, checkpoint=True)
        if problems:
            yield checkpoint_method.finding(
                Severity.FAIL, f"this checkpoint is {pre.label}: loading it needs {status.needs()}; here: "
                               f"{'; '.join(problems)} (unverified: read from transformers {table_release()} "
                               f"{method.source.split(' ')[0]})",
                detected="; ".join(problems), required=status.needs(),
                fix=" && ".join(status.fixes) or f"a target with {method.device}", option=pre.quant_method,
            )
        want = method.gpu_dtype
        if want is not None and c.dtype != want.dtype and c.placement != "cpu":
            yield checkpoint_method.finding(
                Severity.WARN, f"{pre.label}: {want.why} (unverified: read from transformers {table_release()} "
                               f"{want.source})",
                detected=f"dtype {c.dtype}", required=f"dtype {want.dtype}", fix=f'load it with dtype="{want.dtype}"',
                option=c.dtype,
            )
    if pre.bits is None:
        yield checkpoint_method.finding(
            Severity.WARN, f"the checkpoint is {pre.label}, but its config does not say how many bits a weight takes: "
                           "the weights are estimated unquantized (an upper bound)",
            detected=f"checkpoint: {pre.quant_method}", required="bits in quantization_config", option="none",
        )


def _executed_checkpoint(ctx: Context, c: Candidate, label: str, quant_method: str, verdict: QuantizerVerdict,
                         method: Method | None) -> Iterator[Finding]:
    """QUANT009 from the target release's own quantizer, run under this target's conditions: refused is a
    failure with the release's error, dequantized is a plan at the unquantized size with its warning, and a dtype
    its update_dtype changes is a warning. The run's packages are new enough; an installed one older than the
    version read from source still fails, said to be unverified."""
    case, release = verdict.case, verdict.release
    here = "the CPU" if case.device == "cpu" else f"compute capability {ctx.weakest_cc}"
    missing = f"{', '.join(case.absent)} not installed" if case.absent else "every package it asks about installed"
    if case.verdict == "refused":
        installs = verdict.installs_that_load()
        gpu = _device_that_loads(verdict)
        fixes = [f"pip install {' '.join(p)}" for p in installs] or ([gpu] if gpu else [])
        yield checkpoint_method.finding(
            Severity.FAIL, f"this checkpoint is {label}: transformers {release} refuses it on {here} ({missing}): "
                           f"{case.detail} ({verdict.cite()})",
            detected=f"transformers {release} on {here}; {missing}", required="a case its quantizer accepts",
            fix="; or ".join(fixes) or "a target where its quantizer accepts it", option=quant_method,
        )
        return
    if method is not None:
        from advisor.knowledge.quant_methods import table_release
        from advisor.rules.method_readiness import method_status

        status = method_status(ctx.env, method, ctx.weakest_cc, cache=ctx.cache)
        old = [p for p in status.missing if "(installed " in p]
        if old:
            yield checkpoint_method.finding(
                Severity.FAIL, f"this checkpoint is {label}: {'; '.join(old)} (unverified: the version read from "
                               f"transformers {table_release()} {method.source.split(' ')[0]})",
                detected="; ".join(old), required=status.needs(),
                fix=" && ".join(f"pip install -U '{p.split(' ')[0]}'" for p in old), option=quant_method,
            )
    if case.verdict == "dequantizes":
        gpu = _device_that_loads(verdict, quantized=True)
        yield checkpoint_method.finding(
            Severity.WARN, f"{label}: transformers {release} dequantizes it to bf16 here ({here}, {missing}): "
                           f"\"{case.detail}\"; it loads and runs at the unquantized size, which the memory figure "
                           f"is ({verdict.cite()})",
            detected=f"transformers {release} on {here}; {missing}", required="a case its quantizer keeps quantized",
            fix=gpu or "a target where it loads quantized", option=c.dtype,
        )
    forced = case.dtype_for_bfloat16
    if c.dtype == "bfloat16" and forced not in (None, "bfloat16") and c.placement != "cpu":
        yield checkpoint_method.finding(
            Severity.WARN, f"{label}: transformers {release} loads a requested bfloat16 as {forced} here "
                           f"(its update_dtype; {verdict.cite()})",
            detected="dtype bfloat16", required=f"dtype {forced}", fix=f'load it with dtype="{forced}"',
            option=c.dtype,
        )


def _device_that_loads(verdict: QuantizerVerdict, *, quantized: bool = False) -> str | None:
    """'a GPU with compute capability >= X' where the same packages make the release accept it (quantized)."""
    from advisor.facts import ComputeCapability

    ok = ("accepted",) if quantized else ("accepted", "dequantizes")
    ccs = [ComputeCapability.parse(c.device) for c in verdict.cases
           if c.device != "cpu" and c.absent == verdict.case.absent and c.verdict in ok]
    if not ccs:
        return None
    low = min(ccs, key=lambda cc: cc.as_tuple)
    return f"a GPU with compute capability >= {low}" if low.as_tuple > (6, 0) else "a CUDA GPU"
