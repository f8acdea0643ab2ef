"""A model's real class built on the meta device (no memory, no weights), and the exact counts it gives.

Imports transformers inside each call: resolving a shipped or cached model never comes here (issue 14).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_on_meta", "count_on_meta"]


def build_on_meta(config: dict[str, Any], architecture: str | None, trust_remote_code: bool = False) -> Any:
    """The real model class built from `config` on the meta device (no memory, no weights), tied as
    from_pretrained ties it: 5.0.0's constructor leaves GPT-2's lm_head untied, counting it twice. Raises what
    the class raises for a config it refuses."""
    import copy

    import torch
    import transformers
    from transformers import AutoConfig

    cfg = {k: v for k, v in copy.deepcopy(config).items() if k not in ("transformers_version", "_name_or_path")}
    hf_config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    cls = getattr(transformers, architecture, None) if architecture else None
    with torch.device("meta"):
        model: Any = (cls(hf_config) if cls is not None
                      else transformers.AutoModel.from_config(  # type: ignore[no-untyped-call]
                          hf_config, trust_remote_code=trust_remote_code))
    try:
        model.tie_weights()
    except Exception:  # noqa: BLE001 - a class whose tying fails on meta is counted as built
        pass
    return model


def count_on_meta(
    config: dict[str, Any], architecture: str | None, trust_remote_code: bool
) -> tuple[int, int, str | None] | None:
    """Exact counts from `build_on_meta`: all parameters, those bitsandbytes would quantize in the installed
    transformers, and why most are not (when that is so)."""
    try:
        model = build_on_meta(config, architecture, trust_remote_code)
        from advisor.model.quantizable import LOW_SHARE, breakdown

        split = breakdown(model)
        note = split.reason()[1] if split.non_embedding_share < LOW_SHARE else None
        return sum(p.numel() for p in model.parameters()), split.quantizable, note
    except Exception:  # ImportError (no torch) or a config the class refuses: no exact count
        return None
