"""What the planner knows about a model (`ModelSpec`), all derived from its config; no weights, no imports.

Made by `advisor.model.resolve`; read by every room above the model.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.model.prequantized import CheckpointQuantization

__all__ = ["WEIGHT_FILES", "TOKENIZER_FILES", "ModelSpec", "has_tokenizer", "shape_signature"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


class ModelSpec(BaseModel):
    """What the planner needs to know about a model; all derived from its config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: Literal["folder", "config-file", "hf-cache", "shipped", "download"]
    path: str | None = None
    has_weights: bool = False
    model_type: str
    architecture: str | None
    param_count: int
    quantizable_param_count: int
    param_count_method: Literal["meta-device", "formula", "estimate"]
    param_count_note: str | None = None
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    stored_dtype: str | None
    max_positions: int | None
    is_encoder_decoder: bool
    generative: bool
    sliding_window: int | None = None
    alibi: bool = False
    trust_remote_code: bool = False
    # Why bitsandbytes would leave most weights unquantized (advisor.model.quantizable); None when it quantizes most.
    quantizable_note: str | None = None
    quantizable_release: str | None = None  # the transformers release whose replacement rule gave the count
    # A checkpoint already quantized (its config.json's quantization_config): it loads through that method only
    checkpoint_quantization: CheckpointQuantization | None = None
    config: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)  # for advisor.estimate.simulate
    # True when describing this model counted it on the meta device (imported transformers): only then, or with
    # --simulate, is memory simulated without a cached result (advisor.estimate.adapter, issue 14)
    analysed_now: bool = Field(default=False, exclude=True, repr=False)

    @property
    def display(self) -> str:
        from advisor.numbers import params

        note = f"; closed-form count: {self.param_count_note}" if self.param_count_note else ""
        return f"{self.name} ({self.architecture or self.model_type}, {params(self.param_count)} params{note})"

    @property
    def stored(self) -> str:
        """The checkpoint's dtype (a config without one is float32, transformers' default) and quantization."""
        dtype = (self.stored_dtype or "float32 (not declared)").removeprefix("torch.")
        pre = self.checkpoint_quantization
        return f"{dtype}, quantized {pre.label}" if pre is not None else dtype


def shape_signature(model: ModelSpec) -> str:
    """hidden, heads, KV heads, head_dim, layers: what a kernel's speed depends on besides the model type."""
    return (f"h{model.hidden_size}-a{model.num_attention_heads}-kv{model.num_key_value_heads}"
            f"-d{model.head_dim}-l{model.num_layers}")


TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
    "vocab.json", "vocab.txt",
)


def has_tokenizer(folder: str) -> bool:
    """Whether the folder ships tokenizer files: transformers 5 builds an empty tokenizer from nothing."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES)
