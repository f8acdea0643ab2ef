"""Rules read from the target's transformers release itself (data/release_constraints.json) and from the model's
config: the torch floor, from_pretrained kwargs the release removed, model types it does not know, sequence lengths
beyond the model's positions, and ONNX Runtime's removed ROCm provider.
"""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.findings import Finding, Severity
from advisor.knowledge import version_matches
from advisor.rules.base import Context, rule


@rule("TORCH001", "torch below this transformers' floor", scope="environment",
      fix="install the torch version the message names, or a transformers release that supports this torch")
def torch_floor(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Every transformers release disables torch below a floor: `is_torch_available()` returns False (2.6 in
    5.20-5.24, 2.2 in 5.0, 2.1 in 4.52-4.57), and then no model class imports. The floor is read from each
    release's utils/import_utils.py."""
    torch = ctx.version("torch")
    if torch is None:
        return
    for row in ctx.knowledge.constraints_for("torch", ctx.versions()):
        if row.code.startswith("torch-floor@") and not version_matches(str(torch), row.specifier):
            yield torch_floor.finding(
                Severity.FAIL, f"{row.message} ({row.source})", detected=f"torch {torch}",
                required=f"torch{row.specifier}", fix=row.fix,
            )


@rule("REL001", "transformers release newer than the advisor's tables", scope="environment",
      fix="install that release where the advisor runs (it then reads its facts from the package), or upgrade the "
          "advisor to a build whose tables hold it")
def release_unknown(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """The target runs a transformers release newer than every shipped table and not installed here (a snapshot
    from another machine, or `--assume transformers==X`). Its attention gates, kwargs, library windows and
    quantization rule are unknown; the advisor says so rather than applying the newest stored release's facts
    (5.23's `kernels` window applied to 5.25 gave a fix that broke the install). An installed newer release is
    read from its own files instead (`advisor.knowledge.installed`)."""
    target = ctx.env.version_of("transformers")
    source = ctx.knowledge.releases.source_of(target)
    if target is not None and source is not None and "unknown" in source:
        yield release_unknown.finding(
            Severity.WARN, f"{source}: the plan checks it against no release's gates, kwargs or library windows",
            detected=f"transformers {target}", required="a release in the tables, or installed here",
        )


DTYPE_KWARG_RUN = "docs/knowledge/dtype-kwarg.json"  # scripts/check_dtype_kwarg.py: what each release did with dtype=


@rule("KWARG001", "from_pretrained keyword removed or renamed in this transformers", scope="environment",
      fix='pass quantization_config=BitsAndBytesConfig(load_in_8bit=True) (or load_in_4bit=True) instead of the '
          'top-level flag; spell the dtype keyword the way the release does')
def removed_kwargs(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """transformers 5.0 removed the top-level `load_in_8bit=` / `load_in_4bit=` arguments of from_pretrained: they
    reach the model's __init__ and raise TypeError. 4.56 renamed `torch_dtype=` to `dtype=` (the old name still
    works, with a deprecation warning); releases before 4.56 do not know `dtype=`, which then reaches the model's
    __init__ as well (TypeError, executed)."""
    kwargs = ctx.from_pretrained
    target = ctx.env.version_of("transformers")
    releases = ctx.knowledge.releases
    flags = [k for k in ("load_in_8bit", "load_in_4bit") if kwargs.get(k)]
    load_in = releases.at("load_in_kwargs", target)
    if flags and load_in is not None and load_in.value == "removed":
        flag = flags[0]
        yield removed_kwargs.finding(
            Severity.FAIL,
            f"transformers {target} has no top-level {flag}= argument: from_pretrained raises TypeError "
            f"({load_in.cite()})",
            detected=f"{flag}=True", required="quantization_config=BitsAndBytesConfig(...)",
            fix=f"pass quantization_config=BitsAndBytesConfig({flag}=True) instead of {flag}=True",
        )
    spelling = releases.at("dtype_kwarg", target)
    if spelling is None:
        return
    if "torch_dtype" in kwargs and spelling.value == "dtype":
        yield removed_kwargs.finding(
            Severity.WARN, f"torch_dtype= is deprecated in transformers {target}; use dtype= ({spelling.cite()})",
            detected="torch_dtype=", required="dtype=", fix="rename torch_dtype= to dtype=",
        )
    elif "dtype" in kwargs and "torch_dtype" not in kwargs and spelling.value == "torch_dtype":
        yield removed_kwargs.finding(
            Severity.FAIL,
            f"transformers {target} does not know dtype= (added in 4.56): it reaches the model's __init__ and "
            f"from_pretrained raises TypeError ({spelling.cite()}; executed in 4.36.2, 4.46.3 and 4.51.3: "
            f"{DTYPE_KWARG_RUN})",
            detected="dtype=", required="torch_dtype=", fix="rename dtype= to torch_dtype=, or upgrade transformers",
        )


@rule("ARCH001", "model type unknown to this transformers", scope="environment",
      fix="upgrade transformers to a release that has this model type, or load its custom code with "
          "--trust-remote-code")
def unknown_model_type(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """from_pretrained looks the config's `model_type` up in the auto mappings; a type the release does not know
    (and that brings no `auto_map` custom code) cannot load at all, whatever the attention or dtype."""
    model = ctx.model
    if model is None or model.trust_remote_code:
        return
    from advisor.knowledge.model_types import model_type_known

    target = ctx.env.version_of("transformers")
    found = model_type_known(model.model_type, target, cache=ctx.cache)
    if found.known is not False:
        return
    if found.first_release is not None:
        fix = (f"upgrade transformers: {model.model_type} first appears in {found.first_release} "
               f"(pip install -U 'transformers>={found.first_release}')")
    else:
        fix = (f"no stored transformers release (4.36 to the newest) knows {model.model_type!r}: it needs custom code "
               "(an auto_map in config.json and --trust-remote-code), or check the model_type for a typo")
    yield unknown_model_type.finding(
        Severity.FAIL, f"transformers {target or ''} does not know model_type {model.model_type!r} ({found.source})",
        detected=f"model_type {model.model_type}", required="a model type in the release's auto mappings", fix=fix,
    )


@rule("SEQ001", "sequence longer than the model's positions", scope="environment",
      fix="lower --seq-len to the model's max_position_embeddings, or use a long-context variant of the model")
def seq_len_positions(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """A model has `max_position_embeddings` positions (GPT-2: 1,024). Where they are a learned table
    (`nn.Embedding(config.max_position_embeddings, ...)`: GPT-2, OPT, BERT, BART, Whisper) a longer sequence raises
    `IndexError: index out of range in self`. Rotary, ALiBi, relative and self-extending sinusoidal positions are
    computed, so the model runs past them but was not trained there and degrades (rope_scaling extends rotary
    models). The kind per model type is read from its modeling file (data/position_kinds.json); an unknown kind is
    treated as a learned table."""
    model = ctx.model
    if model is None or not model.max_positions or ctx.seq_len <= model.max_positions:
        return
    from advisor.knowledge.positions import position_kind

    found = position_kind(model.model_type, model.config, ctx.knowledge.root, cache=ctx.cache)
    over = (f"sequence length {ctx.seq_len:,} exceeds {model.name}'s {model.max_positions:,} positions "
            "(max_position_embeddings)")
    if found.computed:
        rope = ("; set rope_scaling (rope_parameters in transformers 5.x, e.g. "
                f'{{"rope_type": "yarn", "factor": {-(-ctx.seq_len // model.max_positions)}.0}}) to extend it'
                if found.kind == "rotary" else "")
        yield seq_len_positions.finding(
            Severity.WARN,
            f"{over}: its {found.kind} positions ({found.source}) run past them, but quality degrades beyond the "
            f"trained length{rope}",
            detected=f"seq_len {ctx.seq_len:,}, {found.kind} positions", required=f"<= {model.max_positions:,}",
            fix=f"lower --seq-len to {model.max_positions} or less, use a long-context variant of the model"
                + (", or rope_scaling" if found.kind == "rotary" else ""),
        )
        return
    why = ("a learned position table raises IndexError past its last row" if found.kind == "learned" else
           "its position encoding is unknown, so it is treated as a learned table that raises IndexError")
    yield seq_len_positions.finding(
        Severity.FAIL, f"{over}: {why} ({found.source})",
        detected=f"seq_len {ctx.seq_len:,}, {found.kind} positions", required=f"<= {model.max_positions:,}",
        fix=f"lower --seq-len to {model.max_positions} or less, or use a long-context variant of the model",
    )


@rule("ORT001", "ONNX Runtime has no ROCm execution provider", scope="environment",
      fix='use provider="MIGraphXExecutionProvider" (onnxruntime built with MIGraphX), or onnxruntime < 1.23')
def ort_rocm(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """ONNX Runtime 1.23 removed the ROCm execution provider from its source tree; on AMD GPUs the MIGraphX (or
    Vitis AI) provider replaces it. Advice naming ROCMExecutionProvider would fail on those releases."""
    if not ctx.rocm:
        return
    for dist in ("onnxruntime", "onnxruntime-rocm", "onnxruntime-gpu"):
        lib = ctx.env.library(dist)
        if not lib.installed:
            continue
        for row in ctx.knowledge.constraints_for("onnxruntime", ctx.versions()):
            if row.code == "ort-rocm-ep-removed" and not version_matches(lib.version, row.specifier):
                note = "" if row.verified else " (unverified)"
                yield ort_rocm.finding(
                    Severity.WARN, f"{dist} {lib.version}: {row.message}{note}", detected=f"{dist} {lib.version}",
                    required="MIGraphXExecutionProvider", fix=row.fix,
                )
