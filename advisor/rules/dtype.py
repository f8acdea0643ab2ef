"""DTYPE rules: is this dtype native on the target, and numerically safe for this model?"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.facts import known
from advisor.findings import Finding, Severity
from advisor.knowledge.notes import fp16_overflow_models
from advisor.rules.base import Context, rule
from advisor.rules.kernel_requirements import native_dtypes


@rule("DTYPE001", "bfloat16 is not native on this GPU", scope="candidate", remedy="switch",
      fix='use dtype="float16" on this GPU (or float32 if the model overflows in fp16)')
def bf16_native(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """bf16 tensor cores start at compute capability 8.0 (Ampere). On a T4 or V100, torch emulates bf16 and
    `torch.cuda.is_bf16_supported()` even returns True (torch >= 2.4), but matmuls run several times slower."""
    if c is None or c.placement == "cpu":
        return
    uses_bf16 = c.dtype == "bfloat16"
    if not uses_bf16:
        return
    for gpu in ctx.gpus:
        cc = known(gpu.compute_capability)
        if (cc is not None or gpu.gfx_arch) and "bfloat16" not in native_dtypes(ctx.knowledge, cc, gpu.gfx_arch):
            yield bf16_native.finding(
                Severity.FAIL,
                f"{gpu.name} (compute capability {gpu.compute_capability}) has no native bfloat16",
                detected=f"{gpu.name}: bf16 emulated", required="compute capability >= 8.0", option=c.dtype,
            )
            return


@rule("DTYPE002", "half precision on the CPU", scope="candidate", remedy="switch",
      fix='on the CPU pass dtype="float32" explicitly (transformers 5 keeps the checkpoint\'s dtype, often bfloat16, '
          'when none is given), or bfloat16 only on CPUs with AMX/AVX512-BF16')
def cpu_half(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Most CPUs have no fp16 arithmetic and emulate bf16; half precision halves memory but is usually slower.
    float32 is not what you get by default in transformers 5: from_pretrained then uses dtype="auto", the
    checkpoint's own dtype (4.x loaded float32)."""
    if c is not None and c.placement == "cpu" and c.dtype != "float32":
        run = ctx.knowledge.releases.at("dtype_default", ctx.env.version_of("transformers"))
        default = ""
        if run is not None and not ctx.dtype_given:  # an explicit dtype is not "no dtype" (issue 31)
            default = ("; with no dtype, this transformers keeps the checkpoint's dtype" if run.value == "auto"
                       else "; with no dtype, this transformers loads float32") + f" ({run.cite()})"
        yield cpu_half.finding(
            Severity.WARN, f"{c.dtype} on the CPU is usually slower than float32{default}", detected=c.dtype,
            required="float32 for speed on most CPUs", option=c.dtype,
        )


@rule("DTYPE003", "model known to overflow in float16", scope="candidate",
      fix='use dtype="bfloat16" (Ampere or newer) or float32')
def fp16_overflow(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Some models trained in bf16 (T5, mT5, Gemma-2) produce activations beyond fp16's range (65504): in fp16 they
    emit inf/NaN or garbage (a warning, which ranks fp16 below float32 for them). Other checkpoints stored as
    bfloat16 get a note only: most run fine in fp16, the only half precision before Ampere."""
    if c is None or ctx.model is None or c.dtype != "float16" or c.quantization == "8bit":
        return
    notes = fp16_overflow_models(str(ctx.knowledge.root))
    mt = ctx.model.model_type
    if mt in notes:
        yield fp16_overflow.finding(
            Severity.WARN, f"{mt} models are known to overflow in float16 ({notes[mt]})",
            detected="float16", required="bfloat16 or float32", option=c.dtype,
        )
    elif ctx.model.stored_dtype == "bfloat16":
        # INFO, not WARN: most bf16-stored LLMs (Llama, Mistral, Qwen) run fine in fp16 and fp16 is the only
        # half precision before Ampere; only the families listed in model_notes.json are known to overflow.
        yield fp16_overflow.finding(
            Severity.INFO, "the checkpoint is stored in bfloat16; converting to float16 can overflow in rare layers",
            detected="stored bfloat16 -> float16", required="bfloat16 or float32", option=c.dtype,
        )


@rule("DTYPE004", "float32 on a GPU", scope="candidate",
      fix='use dtype="bfloat16" (Ampere or newer) or "float16": half the memory, tensor-core speed')
def gpu_fp32(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """float32 doubles weight memory and skips tensor cores (TF32 only with
    torch.set_float32_matmul_precision('high'))."""
    if c is not None and c.placement != "cpu" and c.dtype == "float32":
        yield gpu_fp32.finding(
            Severity.INFO, "float32 uses twice the memory of half precision and runs without tensor cores",
            detected="float32", required="", option=c.dtype,
        )
