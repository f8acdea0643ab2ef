"""Build a model with random weights directly on the device, from its config: timing needs shapes, not a checkpoint."""

from __future__ import annotations

from typing import Any

__all__ = ["LAYER_KEYS", "build_random", "truncate"]

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "num_decoder_layers", "n_layers", "encoder_layers",
              "decoder_layers")


def truncate(config: dict[str, Any], layers: int | None) -> dict[str, Any]:
    """The config with every depth key that it has set to `layers` (None: unchanged)."""
    out = dict(config)
    if layers is not None:
        for key in LAYER_KEYS:
            if isinstance(out.get(key), int):
                out[key] = min(out[key], layers)
        text = out.get("text_config")
        if isinstance(text, dict):
            out["text_config"] = truncate(text, layers)
    return out


def build_random(torch: Any, transformers: Any, auto: Any, config: dict[str, Any], kwargs: dict[str, Any],
                 layers: int | None = None) -> Any:
    """`auto.from_config` under the target device, in the candidate's dtype and attention implementation."""
    cfg = truncate(config, layers)
    cfg.pop("auto_map", None)  # never custom code here: random weights of a native class only
    model_type = cfg.pop("model_type")
    for key in ("transformers_version", "architectures", "torch_dtype", "dtype", "_name_or_path",
                "quantization_config"):
        cfg.pop(key, None)
    built = transformers.AutoConfig.for_model(model_type, **cfg)
    device = "cuda" if torch.cuda.is_available() and kwargs.get("device_map") != "cpu" else "cpu"
    with torch.device(device):
        return auto.from_config(built, dtype=kwargs.get("dtype"), attn_implementation=kwargs.get("attn_implementation"))
