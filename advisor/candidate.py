"""The planner's unit: one way to call from_pretrained (`Candidate`), and the vocabulary it is written in.

A vocabulary module: rules, the planner, the estimate, the workers and the renderers all speak it, so it sits
below them all and imports nothing of the advisor.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ATTENTION_IMPLS", "ATTENTION_PACKAGES", "BYTES", "Candidate", "DTYPES", "DTYPE_CHOICES", "DTYPE_NAMES", "Dtype",
    "DtypeChoice", "QUANTIZATIONS", "SHORT_DTYPE",
]

# The one spelling of the dtypes the advisor judges: in the order users read them (help, tables, the matrix)
Dtype = Literal["float32", "float16", "bfloat16"]
DtypeChoice = Literal["auto", Dtype]  # what --dtype and a request take: "auto" lets the planner choose
DTYPE_NAMES: tuple[str, ...] = get_args(Dtype)
DTYPE_CHOICES: tuple[str, ...] = ("auto", *DTYPE_NAMES)
DTYPES: tuple[str, ...] = tuple(reversed(DTYPE_NAMES))  # the planner's order: half precision first
SHORT_DTYPE = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}  # table columns and matrix cells
# Every attn_implementation the advisor names: the columns of `matrix`, and of `matrix --history` / `--full`, whose
# history table stores flash_attention_4 too since issue 28 (knowledge.history.HISTORY_IMPLS: all but eager)
ATTENTION_IMPLS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")
# The optional package whose kernel an attn_implementation runs (data/attention_impls.json `package`); sdpa,
# eager and flex_attention run torch's own kernels, so no optional package changes their timing
ATTENTION_PACKAGES = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn-3",
                      "flash_attention_4": "flash-attn-4"}
QUANTIZATIONS = ("none", "8bit", "4bit")
# bytes per parameter or cached value, unquantized
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class Candidate(BaseModel):
    """One way to call from_pretrained: the unit the planner accepts or rejects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attn: str
    dtype: Dtype
    # none / bitsandbytes 8bit, 4bit / another method where ready (advisor.knowledge.quant_methods.METHOD_QUANTIZATIONS)
    quantization: Literal["none", "8bit", "4bit", "quanto-int8", "hqq-4bit", "fp8", "fbgemm-fp8"] = "none"
    placement: Literal["gpu", "multi-gpu", "cpu"] = "gpu"

    def label(self) -> str:
        quant = "" if self.quantization == "none" else f" + bnb {self.quantization}" \
            if self.quantization in ("8bit", "4bit") else f" + {self.quantization}"
        where = {"gpu": "1 GPU", "multi-gpu": "all GPUs", "cpu": "CPU"}[self.placement]
        return f"{self.attn} / {self.dtype}{quant} / {where}"
