"""The planner's unit: one way to call from_pretrained (`Candidate`), and the vocabulary it is written in.

A vocabulary module: rules, the planner, the estimate, the workers and the renderers all speak it, so it sits
below them all and imports nothing of the advisor.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["BYTES", "Candidate", "DTYPES", "QUANTIZATIONS"]

DTYPES = ("bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "8bit", "4bit")
# bytes per parameter or cached value, unquantized
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class Candidate(BaseModel):
    """One way to call from_pretrained: the unit the planner accepts or rejects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attn: str
    dtype: Literal["bfloat16", "float16", "float32"]
    # none / bitsandbytes 8bit, 4bit / another method where ready (advisor.knowledge.quant_methods.METHOD_QUANTIZATIONS)
    quantization: Literal["none", "8bit", "4bit", "quanto-int8", "hqq-4bit", "fp8", "fbgemm-fp8"] = "none"
    placement: Literal["gpu", "multi-gpu", "cpu"] = "gpu"

    def label(self) -> str:
        quant = "" if self.quantization == "none" else f" + bnb {self.quantization}" \
            if self.quantization in ("8bit", "4bit") else f" + {self.quantization}"
        where = {"gpu": "1 GPU", "multi-gpu": "all GPUs", "cpu": "CPU"}[self.placement]
        return f"{self.attn} / {self.dtype}{quant} / {where}"
