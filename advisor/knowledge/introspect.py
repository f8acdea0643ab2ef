"""Read which attention implementations each architecture declares, from a transformers install.

This is the one place that knows the support flags' names across releases:
`_supports_flash_attn_2` (4.36-4.53) became `_supports_flash_attn` (4.54+, covering FA2/3/4),
`_supports_flash_attn_3` existed only in 4.53, `_supports_flex_attn` appeared in 4.48.
It runs inside whatever interpreter has the transformers of interest, so the history script can call it
in throwaway virtual environments: `python -m advisor.knowledge.introspect > table.json`.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

__all__ = ["class_support", "read_attention_support"]


def _flag(cls: type, *names: str) -> bool:
    for name in names:
        value = getattr(cls, name, None)
        if isinstance(value, bool) and value:
            return True
    return False


def _version_tuple(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def class_support(cls: type, transformers_version: str) -> dict[str, bool]:
    """The attention implementations `cls.from_pretrained(attn_implementation=...)` accepts."""
    version = _version_tuple(transformers_version)
    fa2 = _flag(cls, "_supports_flash_attn", "_supports_flash_attn_2")
    if version >= (4, 54):
        fa3 = _flag(cls, "_supports_flash_attn")
    elif version >= (4, 53):
        fa3 = _flag(cls, "_supports_flash_attn_3")
    else:
        fa3 = False
    return {
        "eager": True,
        "sdpa": _flag(cls, "_supports_sdpa"),
        "flash_attention_2": fa2,
        "flash_attention_3": fa3,
        "flex_attention": version >= (4, 48) and _flag(cls, "_supports_flex_attn"),
    }


def read_attention_support() -> dict[str, Any]:
    """Every base-model mapping entry of the importable transformers, with its declared support."""
    import transformers
    from transformers.models.auto import modeling_auto

    version = transformers.__version__
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for model_type, class_names in modeling_auto.MODEL_MAPPING_NAMES.items():
        names = class_names if isinstance(class_names, (list, tuple)) else (class_names,)
        class_name = names[0]
        try:
            cls = getattr(transformers, class_name)
        except Exception as exc:  # an optional dependency of one model must not stop the table
            try:
                module = importlib.import_module(f"transformers.models.{model_type.replace('-', '_')}")
                cls = getattr(module, class_name)
            except Exception:
                skipped.append(f"{model_type}: {type(exc).__name__}: {exc}".splitlines()[0][:200])
                continue
        rows.append({"model_type": model_type, "class": class_name, **class_support(cls, version)})
    return {
        "schema_version": 1,
        "description": "Attention implementations each base-model class declares, read from its support flags.",
        "transformers": version,
        "generated_by": "python -m advisor.knowledge.introspect",
        "source": f"transformers {version}: models.auto.modeling_auto.MODEL_MAPPING_NAMES and each class's "
        "_supports_sdpa / _supports_flash_attn(_2/_3) / _supports_flex_attn flags",
        "architectures": rows,
        "skipped": skipped,
    }


if __name__ == "__main__":
    json.dump(read_attention_support(), sys.stdout, indent=1)
    sys.stdout.write("\n")
