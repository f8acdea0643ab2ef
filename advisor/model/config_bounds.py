"""Bounds on what a stranger's config.json may say: types, ranges and consistent shapes, before any plan.

NOTE (issue 15): a config with `hidden_size: -4096`, `num_attention_heads: 1e30` or a negative
`max_position_embeddings` was planned with exit 0 and negative memory figures; a string where an int
belongs crashed with exit 3. Here each size field a config may use (under any of its aliases, at the top
level or in `text_config`) is a strict positive int with a sane maximum, and the derived shape must be
consistent (heads divide the hidden size when `head_dim` is not given, KV heads divide heads). Every
failure is one `UsageError` naming the file, the field and what is wrong.

The limits on building a model on the meta device live here too: past them the closed-form count is used.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

from advisor.errors import UsageError
from advisor.io.read_input import field_name
from advisor.model.prequantized import QuantizationFields

__all__ = [
    "META_MAX_INT",
    "META_MAX_LAYERS",
    "META_MAX_PARAMS",
    "ModelShape",
    "check_shape",
    "meta_build_refusal",
    "validate_config",
]

# Sane maxima: an order of magnitude or more above the largest published models (hidden 53k, 128 heads,
# 160 layers, 256k vocab, 10M context), so no real config is refused, and no figure overflows a plan.
_HIDDEN_MAX = 1 << 20
_HEADS_MAX = 1 << 16
_LAYERS_MAX = 1_000_000
_VOCAB_MAX = 1 << 26
_FFN_MAX = 1 << 24
_POSITIONS_MAX = 1 << 31

Hidden = Annotated[StrictInt, Field(ge=1, le=_HIDDEN_MAX)]
Heads = Annotated[StrictInt, Field(ge=1, le=_HEADS_MAX)]
Layers = Annotated[StrictInt, Field(ge=1, le=_LAYERS_MAX)]
Vocab = Annotated[StrictInt, Field(ge=1, le=_VOCAB_MAX)]
Ffn = Annotated[StrictInt, Field(ge=0, le=_FFN_MAX)]  # 0 means "4 x hidden" in several configs
Positions = Annotated[StrictInt, Field(ge=1, le=_POSITIONS_MAX)]
Window = Annotated[StrictInt, Field(ge=0, le=_POSITIONS_MAX)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,100}$")]
DtypeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.]{1,40}$")]


class _SizeFields(BaseModel):
    """The size fields of one config level; unknown keys pass through untouched (transformers reads them)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    hidden_size: Hidden | None = None
    d_model: Hidden | None = None
    n_embd: Hidden | None = None
    dim: Hidden | None = None
    num_attention_heads: Heads | None = None
    n_head: Heads | None = None
    num_heads: Heads | None = None
    n_heads: Heads | None = None
    decoder_attention_heads: Heads | None = None
    encoder_attention_heads: Heads | None = None
    num_key_value_heads: Heads | None = None
    num_kv_heads: Heads | None = None
    n_head_kv: Heads | None = None
    head_dim: Hidden | None = None
    d_kv: Hidden | None = None
    num_hidden_layers: Layers | None = None
    n_layer: Layers | None = None
    num_layers: Layers | None = None
    n_layers: Layers | None = None
    decoder_layers: Layers | None = None
    encoder_layers: Layers | None = None
    num_decoder_layers: Layers | None = None
    vocab_size: Vocab | None = None
    n_vocab: Vocab | None = None
    intermediate_size: Ffn | None = None
    ffn_dim: Ffn | None = None
    decoder_ffn_dim: Ffn | None = None
    encoder_ffn_dim: Ffn | None = None
    n_inner: Ffn | None = None
    d_ff: Ffn | None = None
    ffn_hidden_size: Ffn | None = None
    max_position_embeddings: Positions | None = None
    n_positions: Positions | None = None
    max_target_positions: Positions | None = None
    max_source_positions: Positions | None = None
    n_ctx: Positions | None = None
    max_sequence_length: Positions | None = None
    sliding_window: Window | None = None
    multi_query: StrictBool | None = None
    alibi: StrictBool | None = None
    is_decoder: StrictBool | None = None
    is_encoder_decoder: StrictBool | None = None
    tie_word_embeddings: StrictBool | None = None
    dtype: DtypeName | None = None
    torch_dtype: DtypeName | None = None


class _TopLevel(_SizeFields):
    """The top level also names the model: `model_type` and `architectures` are identifiers, nothing else."""

    model_type: Identifier
    architectures: Annotated[list[Identifier], Field(max_length=64)] | None = None
    text_config: _SizeFields | None = None
    quantization_config: QuantizationFields | None = None  # issue 25: bits, group sizes, quant_method bounded


def _problem(error: Any) -> str:
    kind = error.get("type", "")
    got = error.get("input")
    shown = repr(got)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    shown = shown.encode("ascii", "backslashreplace").decode("ascii")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {shown}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{shown} is out of range ({error.get('msg', '')})".replace("Input should be ", "must be ")
    if kind == "bool_type":
        return f"must be true or false, got {shown}"
    if kind == "missing":
        return "is missing"
    if kind == "string_pattern_mismatch":
        return f"must be a plain identifier (letters, digits, _ . -), got {shown}"
    if kind == "string_type":
        return f"must be a string, got {shown}"
    if kind == "list_type":
        return f"must be a list of strings, got {shown}"
    if kind in ("model_type", "dict_type"):
        return f"must be an object, got {shown}"
    return f"{error.get('msg', 'is invalid')}, got {shown}"


def validate_config(config: Any, source: str) -> None:
    """Refuse a config whose size fields have the wrong type or an absurd value; `source` names the file."""
    if not isinstance(config, dict):
        raise UsageError(f"{source} does not hold a JSON object: it is not a transformers config.json")
    try:
        _TopLevel.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"{source}: field {field_name(first['loc'])} {_problem(first)}; fix the config") from None


class ModelShape(BaseModel):
    """The shape the planner uses, after aliases and defaults: every figure positive and the parts consistent."""

    model_config = ConfigDict(frozen=True)

    hidden_size: Annotated[int, Field(ge=1, le=_HIDDEN_MAX)]
    num_attention_heads: Annotated[int, Field(ge=1, le=_HEADS_MAX)]
    num_key_value_heads: Annotated[int, Field(ge=1, le=_HEADS_MAX)]
    head_dim: Annotated[int, Field(ge=1, le=_HIDDEN_MAX)]
    head_dim_given: bool
    num_layers: Annotated[int, Field(ge=1, le=_LAYERS_MAX)]
    vocab_size: Annotated[int, Field(ge=0, le=_VOCAB_MAX)]  # 0: none given (CANINE reads characters, no vocab)
    intermediate_size: Annotated[int, Field(ge=1, le=_FFN_MAX * 4)]

    @model_validator(mode="after")
    def _consistent(self) -> ModelShape:
        if not self.head_dim_given and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} does not divide hidden_size {self.hidden_size} "
                "(and no head_dim is given)"
            )
        if self.num_key_value_heads > self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads {self.num_key_value_heads} does not divide num_attention_heads "
                f"{self.num_attention_heads}"
            )
        return self


_SHAPE_FIELDS = {
    "hidden_size": "hidden_size (or d_model, n_embd, dim)",
    "num_attention_heads": "num_attention_heads (or n_head, num_heads)",
    "num_key_value_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "num_layers": "num_hidden_layers (or n_layer, num_layers)",
    "vocab_size": "vocab_size",
    "intermediate_size": "intermediate_size",
}


def check_shape(source: str, **figures: Any) -> ModelShape:
    """The derived shape, or a one-line UsageError naming the field (a missing size reads as 0)."""
    try:
        return ModelShape.model_validate(figures)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        if loc:
            name = _SHAPE_FIELDS.get(str(loc[0]), str(loc[0]))
            value = first.get("input")
            what = "is missing or not positive" if value in (0, None) else _problem(first)
            raise UsageError(f"{source}: field {name} {what}; fix the config") from None
        raise UsageError(f"{source}: inconsistent shape: {str(first['msg']).removeprefix('Value error, ')}; fix the config") from None


# ------------------------------------------------------------------------- meta-device build limits

META_MAX_LAYERS = 256  # NOTE (issue 15): 1,000,000 layers took over 300 s to build on the meta device
META_MAX_PARAMS = 2 * 10**12  # 2T parameters by the closed form: past it, module construction alone takes long
META_MAX_INT = 1 << 24  # any count above this (experts, positions, buckets) may make a module loop for minutes


def _largest_int(config: dict[str, Any]) -> tuple[str, int] | None:
    best: tuple[str, int] | None = None
    text = config.get("text_config")
    for level in (config, text if isinstance(text, dict) else {}):
        for key, value in level.items():
            if isinstance(value, int) and not isinstance(value, bool) and (best is None or value > best[1]):
                best = (key, value)
    return best


def meta_build_refusal(config: dict[str, Any], *, layers: int, estimated_params: int) -> str | None:
    """Why the model must not be built on the meta device (then the closed-form count is used), or None."""
    if layers > META_MAX_LAYERS:
        return f"{layers} layers is past the {META_MAX_LAYERS}-layer limit for building the model on the meta device"
    if estimated_params > META_MAX_PARAMS:
        return f"about {estimated_params / 1e12:.0f}T parameters is past the {META_MAX_PARAMS // 10**12}T limit for building it on the meta device"
    largest = _largest_int(config)
    if largest is not None and largest[1] > META_MAX_INT:
        return f"{largest[0]} = {largest[1]} is past the {META_MAX_INT} limit for building the model on the meta device"
    return None
