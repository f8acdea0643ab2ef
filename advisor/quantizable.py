"""Which weights bitsandbytes really quantizes: the replacement rule of transformers, applied to a built model.

NOTE (issue 17): transformers 5.x replaces a module by `Linear8bitLt` / `Linear4bit` only when
`isinstance(module, Conv1D) or type(module) is nn.Linear` (transformers 5.24.0,
`integrations/bitsandbytes.py` line 189, `replace_with_bnb_linear`). A subclass of `nn.Linear` (falcon's
`FalconLinear`) and the fused 3-D expert parameters of the 5.x mixture-of-experts models (`experts.gate_up_proj`,
`experts.down_proj`) stay in the compute dtype; so do the skipped modules: `get_keys_to_not_convert` (the output
embeddings, tied weights and the last parameter's module; `quantizers/base.py` line 39) plus
`llm_int8_skip_modules` and `model._keep_in_fp32_modules` (`quantizers/quantizer_bnb_8bit.py` lines 125-127,
`quantizer_bnb_4bit.py` lines 121-123), matched by `should_convert_module` (`quantizers/quantizers_utils.py` line 26).

`breakdown(model)` runs on a model built on the meta device (no memory) and splits its parameters into what is
replaced and why the rest is not. The skip list comes from the installed transformers' own functions, so it
follows the release; the type test is copied from the line above (it cannot be called without bitsandbytes),
and `tests/unit/test_quantizable.py` fails when that line changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "BNB_RULE",
    "LOW_SHARE",
    "REASONS",
    "Breakdown",
    "ShareRow",
    "breakdown",
    "kind_of",
    "share_row",
    "share_table",
]

# Where the rule lives in the release the shipped table was generated with.
BNB_RULE: dict[str, Any] = {
    "transformers": "5.24.0",
    "file": "transformers/integrations/bitsandbytes.py",
    "line": 189,
    "text": "if isinstance(module, Conv1D) or type(module) is nn.Linear:",
    "skips": [
        {"file": "transformers/quantizers/base.py", "line": 39, "text": "def get_keys_to_not_convert(model) -> list:"},
        {"file": "transformers/quantizers/quantizer_bnb_8bit.py", "line": 125,
         "text": "self.modules_to_not_convert = self.get_modules_to_not_convert("},
        {"file": "transformers/quantizers/quantizers_utils.py", "line": 26,
         "text": "def should_convert_module(full_name, patterns: list[str] | None = None):"},
    ],
}
# Below this share of the non-embedding weights, 8-bit/4-bit loading saves too little to be worth it (issue 17).
LOW_SHARE = 0.6


@dataclass(frozen=True)
class Breakdown:
    """Parameter counts of one built model by what bitsandbytes does with them (element counts: one dtype)."""

    total: int
    quantizable: int
    embedding: int = 0
    fused_experts: int = 0
    linear_subclass: int = 0
    conv: int = 0
    skipped_linear: int = 0
    subclasses: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def share(self) -> float:
        return self.quantizable / self.total if self.total else 0.0

    @property
    def non_embedding_share(self) -> float:
        rest = self.total - self.embedding
        return self.quantizable / rest if rest > 0 else 0.0

    def reason(self) -> tuple[str, str]:
        """(kind, words) for what keeps the largest part of the non-embedding weights out of bitsandbytes."""
        parts = {
            "fused-experts": (self.fused_experts, REASONS["fused-experts"]),
            "linear-subclass": (self.linear_subclass, REASONS["linear-subclass"].format(
                ", ".join(self.subclasses[:2]) or "a class")),
            "convolution": (self.conv, REASONS["convolution"]),
            "skipped": (self.skipped_linear, REASONS["skipped"].format(", ".join(self.skipped[:3]))),
        }
        kind, (count, words) = max(parts.items(), key=lambda kv: kv[1][0])
        if count == 0:
            return "other", REASONS["other"]
        return kind, words


# The reason words, one place: kind_of() reads a reason back into its kind.
REASONS = {
    "fused-experts": "the experts are fused 3-D parameters, not nn.Linear modules",
    "linear-subclass": "the projections are {}, a subclass of nn.Linear",
    "convolution": "most weights are convolutions, which bitsandbytes does not replace",
    "skipped": "most linear weights are in modules transformers skips ({})",
    "other": "most weights are in parameters that are not linear layers",
}


def kind_of(reason: str) -> str:
    """The reason's kind (`fused-experts`, `linear-subclass`, ...) from its words."""
    for kind, words in REASONS.items():
        head = words.split("{}")[0]
        tail = words.split("{}")[-1]
        if reason.startswith(head) and reason.endswith(tail):
            return kind
    return "other"


def breakdown(model: Any) -> Breakdown:
    """Split `model`'s parameters by the installed transformers' bitsandbytes replacement rule (see module doc)."""
    import torch
    from torch import nn

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - every supported release has it
        Conv1D = ()  # type: ignore[assignment,misc]
    skips = _skip_patterns(model)
    convert = _matcher()
    counted: set[int] = set()
    total = quantizable = embedding = experts = subclass = conv = skipped = 0
    subclasses: dict[str, int] = {}
    skipped_names: list[str] = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in own)
        size = sum(p.numel() for p in own)
        weight = sum(p.numel() for p in own if p.dim() == 2)
        total += size
        if isinstance(module, Conv1D) or type(module) is nn.Linear:
            if convert(name, skips):
                quantizable += weight
            else:
                skipped += weight
                skipped_names.append(name.split(".")[-1])
        elif isinstance(module, nn.Linear):
            subclass += weight
            subclasses[type(module).__name__] = subclasses.get(type(module).__name__, 0) + weight
        elif isinstance(module, nn.Embedding):
            embedding += size
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            conv += size
        elif "expert" in name.rsplit(".", 1)[-1].lower() or "expert" in type(module).__name__.lower():
            experts += sum(p.numel() for p in own if p.dim() >= 3)  # gate_up_proj (E, 2I, H), down_proj (E, H, I)
    names = tuple(sorted(subclasses, key=lambda k: -subclasses[k]))
    return Breakdown(total=total, quantizable=quantizable, embedding=embedding, fused_experts=experts,
                     linear_subclass=subclass, conv=conv, skipped_linear=skipped, subclasses=names,
                     skipped=tuple(dict.fromkeys(skipped_names)))


def _skip_patterns(model: Any) -> list[str]:
    """What `_process_model_before_weight_loading` of the bnb quantizers passes as `modules_to_not_convert`
    when `llm_int8_skip_modules` is not set: transformers' own `get_modules_to_not_convert`."""
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    try:
        from transformers.quantizers.base import HfQuantizer

        return list(HfQuantizer.get_modules_to_not_convert(model, None, keep))
    except Exception:  # noqa: BLE001 - an older release or a model without output embeddings: the default
        return ["lm_head", *keep]


def _matcher() -> Any:
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module

        return should_convert_module
    except ImportError:
        return lambda name, patterns: not any(name == p or name.endswith("." + p) for p in patterns or [])


@dataclass(frozen=True)
class ShareRow:
    """One model type of the generated table (data/quantizable_share.json)."""

    model_type: str
    share: float
    non_embedding_share: float
    params: int
    reason: str | None
    kind: str | None


@lru_cache(maxsize=1)
def share_table() -> dict[str, Any]:
    """The generated table, read once (scripts/generate_quantizable_share.py writes it)."""
    from advisor.knowledge import data_dir

    path = data_dir() / "quantizable_share.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {"model_types": {}}


def share_row(model_type: str) -> ShareRow | None:
    """The table's row for `model_type`, or None when the installed release did not build it."""
    row = share_table().get("model_types", {}).get(model_type)
    if not isinstance(row, list):
        return None
    share, non_emb, params, kind, reason = row
    return ShareRow(model_type=model_type, share=share, non_embedding_share=non_emb, params=params,
                    reason=reason, kind=kind)
