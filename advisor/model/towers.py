"""A multimodal model is more than its text tower (issue 31: a Llava folder's model line showed only the text
tower, and smoke passed on token ids without saying that the vision tower never ran).

The towers are read from the config's sub-configs (`vision_config`, `audio_config`, ...; `text_config` is the
one the planner sizes), so no transformers import is needed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Tower", "other_towers", "shape_line", "not_exercised"]

_TOWER_KEYS = {"vision_config": "vision", "audio_config": "audio", "speech_config": "speech",
               "image_config": "vision", "video_config": "video"}


class Tower(tuple):  # type: ignore[type-arg]
    """(kind, model_type, layers, hidden size) of one non-text tower."""

    @property
    def kind(self) -> str:
        return str(self[0])

    def describe(self) -> str:
        kind, model_type, layers, hidden = self
        shape = ", ".join(x for x in (f"{layers} layers" if layers else "", f"hidden {hidden}" if hidden else "") if x)
        return f"{kind} tower ({model_type})" + (f": {shape}" if shape else "")


def other_towers(config: dict[str, Any]) -> list[Tower]:
    """The towers besides the text one, in config order."""
    towers = []
    for key, kind in _TOWER_KEYS.items():
        sub = config.get(key)
        if isinstance(sub, dict):
            towers.append(Tower((kind, sub.get("model_type") or key.removesuffix("_config"),
                                 sub.get("num_hidden_layers") or sub.get("depth"), sub.get("hidden_size"))))
    return towers


def shape_line(m: Any) -> str:
    """The model's shape: its text tower's attention, then every other tower's size."""
    text = (f"{m.num_layers} layers, {m.num_attention_heads} heads ({m.num_key_value_heads} KV), "
            f"head_dim {m.head_dim}")
    towers = other_towers(getattr(m, "config", None) or {})
    if not towers:
        return text
    return f"text tower: {text}; " + "; ".join(t.describe() for t in towers)


def not_exercised(m: Any) -> list[str]:
    """What a smoke run on token ids leaves unrun: every non-text tower."""
    return [f"the {t.kind} tower ({t[1]}) was not run: smoke feeds token ids only, no {t.kind} inputs"
            for t in other_towers(getattr(m, "config", None) or {})]
