"""A checkpoint that is already quantized: what its config.json's `quantization_config` says (issue 17).

Why: a GPTQ, AWQ, bitsandbytes, FP8, MXFP4 or compressed-tensors checkpoint loads through its own quantizer
whatever `from_pretrained` is given: transformers reads `quantization_config` from the config, needs that
method's libraries (`validate_environment` of the quantizer) and raises ValueError when another config class is
passed (`AutoHfQuantizer.merge_quantization_configs`, quantizers/auto.py:259-266 in 5.24.0). Planned as an
ordinary bf16 model, a 4-bit GPTQ 7B would be estimated at 12.6 GiB instead of about 3.6 and the missing library
would show only at load time. The weight size per quantized parameter is read from the config's own fields.

Issue 25: those fields come from a stranger's config.json, so `QuantizationFields` bounds them before any plan
(`config_schema.validate_config` checks it with the rest of the config): `quant_method` a plain name (an object or
a list was accepted), bits 1..64 (negative bits planned negative memory; 10**400 raised OverflowError), group
sizes -1..2**20, the load_in_* flags booleans, and the whole `quantization_config` an object.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

__all__ = ["CheckpointQuantization", "QuantizationFields", "read_checkpoint_quantization"]

# bitsandbytes 4-bit, blocks of 64: an fp32 absmax per block, or with double quantization an 8-bit one plus an
# fp32 per 256 blocks (advisor.estimate.memory.BYTES_4BIT x 8)
_BNB4_BITS = 4 + 32 / 64
_BNB4_DOUBLE_BITS = 8 * (0.5 + 1 / 64 + 4 / (64 * 256))
_QUANTO_BITS = {"int8": 8, "float8": 8, "int4": 4, "int2": 2}


class CheckpointQuantization(BaseModel):
    """The checkpoint's quantization, as its config declares it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quant_method: str  # as written in config.json ("gptq", "compressed-tensors", "bitsandbytes" ...)
    method_key: str  # the row of data/quant_methods.json it would be ("compressed_tensors"); may be absent there
    bits: float | None  # stored bits per quantized weight, scales included; None when the config does not say
    label: str  # "GPTQ 4-bit, group 128"


_Bits = Annotated[StrictInt, Field(ge=1, le=64)]
_Group = Annotated[StrictInt, Field(ge=-1, le=1 << 20)]  # -1: one group per row (GPTQ, AWQ)


class _Weights(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    num_bits: _Bits | None = None
    group_size: _Group | None = None


class _SchemeGroup(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    weights: _Weights | None = None


class QuantizationFields(BaseModel):
    """The fields of a `quantization_config` this module reads, bounded; the others pass untouched."""

    model_config = ConfigDict(extra="allow", frozen=True)

    quant_method: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] | None = None
    bits: _Bits | None = None
    nbits: _Bits | None = None
    group_size: _Group | None = None
    load_in_4bit: StrictBool | None = None
    load_in_8bit: StrictBool | None = None
    config_groups: dict[str, _SchemeGroup | None] | None = None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _grouped(bits: int, group: int, scale_bits: int) -> float:
    """Packed weights plus a scale (and, for GPTQ / AWQ, a packed zero point) per group of `group` weights."""
    return bits + (scale_bits / group if group > 0 else 0.0)


def _bits(method: str, qc: dict[str, Any]) -> tuple[float | None, str]:
    """(bits per weight, the detail for the label) from the fields each method's config class defines."""
    if method in ("gptq", "awq"):  # GPTQConfig / AwqConfig: bits (4), group_size (128; -1 = one group per row)
        bits, group = _int(qc.get("bits"), 4), qc.get("group_size", 128)
        group = group if isinstance(group, int) else 128
        return _grouped(bits, group, 16 + bits), f"{bits}-bit" + (f", group {group}" if group > 0 else "")
    if method == "bitsandbytes":  # BitsAndBytesConfig.to_dict(): load_in_4bit / load_in_8bit
        if qc.get("load_in_4bit"):
            double = bool(qc.get("bnb_4bit_use_double_quant"))
            return (_BNB4_DOUBLE_BITS if double else _BNB4_BITS), f"4-bit {qc.get('bnb_4bit_quant_type', 'fp4')}"
        return (8.0, "8-bit") if qc.get("load_in_8bit") else (None, "")
    if method in ("fp8", "fbgemm_fp8"):  # one float8 per weight; scales per 128 x 128 block or per row
        return 8.0, "float8"
    if method == "mxfp4":  # OCP MX: 4-bit e2m1 values, one 8-bit e8m0 scale per 32
        return 4.25, "4-bit e2m1, scale per 32"
    if method == "quanto":
        kind = str(qc.get("weights", ""))
        return (float(_QUANTO_BITS[kind]), kind) if kind in _QUANTO_BITS else (None, kind)
    if method == "compressed-tensors":  # config_groups: {name: {"weights": {"num_bits", "group_size", ...}}}
        groups = qc.get("config_groups")
        for group in (groups.values() if isinstance(groups, dict) else ()):
            spec = group.get("weights") if isinstance(group, dict) else None
            if isinstance(spec, dict) and isinstance(spec.get("num_bits"), int):
                n, size = int(spec["num_bits"]), _int(spec.get("group_size"), 0)
                return _grouped(n, size, 16), f"{n}-bit {spec.get('type', 'int')}" + (f", group {size}" if size else "")
        return None, ""
    raw = qc.get("bits") or qc.get("nbits")
    return (float(raw), f"{raw}-bit") if isinstance(raw, int) and not isinstance(raw, bool) else (None, "")


def read_checkpoint_quantization(config: dict[str, Any]) -> CheckpointQuantization | None:
    """The config's `quantization_config` (None when the checkpoint is not quantized)."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = str(qc.get("quant_method") or ("bitsandbytes" if qc.get("load_in_4bit") or qc.get("load_in_8bit") else ""))
    if not method:
        return None
    bits, detail = _bits(method, qc)
    name = method.upper() if method in ("gptq", "awq", "fp8", "mxfp4") else method
    return CheckpointQuantization(quant_method=method, method_key=method.replace("-", "_"), bits=bits,
                                  label=f"{name} {detail}".strip() if detail else name)
