"""Read which attention implementations each architecture declares, from a transformers install.

This is the one place that knows the support flags' names across releases:
`_supports_flash_attn_2` (4.36-4.53) became `_supports_flash_attn` (4.54+, covering FA2/3/4),
`_supports_flash_attn_3` existed only in 4.53, `_supports_flex_attn` appeared in 4.48.
It runs inside whatever interpreter has the transformers of interest, so the history script can call it
in throwaway virtual environments: `python -m advisor.knowledge.introspect > table.json`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from typing import Any

__all__ = ["class_support", "composite_support", "read_attention_support"]


def _flag(cls: type, *names: str) -> bool:
    for name in names:
        value = getattr(cls, name, None)
        if isinstance(value, property):
            value = _property_flag(cls, name)
        if isinstance(value, bool) and value:
            return True
    return False


def _property_flag(cls: type, name: str) -> bool:
    """A flag declared as a property (4.40-4.47 composites: `return self.language_model._supports_sdpa`).

    Evaluated on an instance built on the meta device from the class's default config, i.e. what the
    family's reference sub-model declares. If that cannot be built or the property itself fails, the answer
    is the property object's truthiness: those releases check `cls._supports_sdpa` in a classmethod, where
    a property is truthy, so `from_pretrained` accepts the request.
    """
    try:
        import torch

        with torch.device("meta"):
            value = getattr(cls(cls.config_class()), name)  # type: ignore[attr-defined]
        if isinstance(value, bool):
            return value
    except Exception:  # a composite that needs arguments, or a property that reads a missing sub-model
        pass
    return True


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


def _receiving_configs(config: Any) -> set[int]:
    """The config and every sub-config that `config._attn_implementation = ...` forwards the request to."""
    found: set[int] = set()
    todo = [config]
    while todo:
        current = todo.pop()
        found.add(id(current))
        for key in getattr(current, "sub_configs", None) or {}:
            sub = getattr(current, key, None)
            if sub is not None and hasattr(sub, "sub_configs"):
                todo.append(sub)
    return found


def composite_support(cls: type, model_type: str, transformers_version: str) -> dict[str, bool] | None:
    """What `from_pretrained` accepts for a model whose sub-models decide too (5.x), or None if unknown.

    In transformers 5 the request is forwarded to every sub-config, and each sub-model's `__init__` runs
    `_check_and_adjust_attn_implementation` on its own class: a composite (rt_detr's backbone, vibevoice's
    tokenizers, minimax_m3_vl's vision tower) refuses what any of its receiving sub-models lacks. So the model
    is built once with eager on the meta device from its default config, and every PreTrainedModel in it whose
    config receives the request adds its flags. None when the default config cannot be built here.
    """
    if _version_tuple(transformers_version) < (5, 0):
        return None  # 4.x forwarded the request differently; its history rows keep the class flags
    try:
        import torch
        from transformers import AutoConfig, PreTrainedModel

        config = AutoConfig.for_model(model_type)
        with torch.device("meta"):
            model = cls._from_config(config, attn_implementation="eager")  # type: ignore[attr-defined]
    except Exception:  # an optional dependency, a config that needs arguments: the class flags stand
        return None
    support = _redirected(cls, class_support(cls, transformers_version))
    receiving = _receiving_configs(model.config)
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module is not model and id(module.config) in receiving:
            sub = _redirected(type(module), class_support(type(module), transformers_version))
            support = {impl: ok and sub[impl] for impl, ok in support.items()}
    return support


def _redirected(cls: type, support: dict[str, bool]) -> dict[str, bool]:
    """A class's `_compatible_flash_implementations` (5.x) turns any flash request into its first entry; an entry
    without "flash" in its name (minimax_m3_vl's Hub kernel "MiniMaxAI/msa") skips every flash check, so the
    request is accepted whatever `_supports_flash_attn` says (`_check_and_adjust_attn_implementation`)."""
    compatible = getattr(cls, "_compatible_flash_implementations", None)
    if isinstance(compatible, (list, tuple)) and compatible and "flash" not in str(compatible[0]):
        return {**support, "flash_attention_2": True, "flash_attention_3": True}
    return support


# Head mappings read, in this order, for model types that have no base-model entry: composites such as
# llava (before 4.52) or musicgen (before 4.41) only have a `...ForConditionalGeneration` class.
_HEAD_MAPPINGS = (
    "MODEL_FOR_PRETRAINING_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES",
    "MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES",
    "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
)


def _model_classes(modeling_auto: Any) -> dict[str, Any]:
    """model_type -> class name(s): the base-model mapping, then the first head mapping for the rest."""
    classes: dict[str, Any] = dict(modeling_auto.MODEL_MAPPING_NAMES)
    others = sorted(
        name
        for name in dir(modeling_auto)
        if name.startswith("MODEL_") and name.endswith("_MAPPING_NAMES") and name not in _HEAD_MAPPINGS
    )
    for mapping_name in (*_HEAD_MAPPINGS, *others):
        mapping = getattr(modeling_auto, mapping_name, None)
        if isinstance(mapping, dict):
            for model_type, class_names in mapping.items():
                classes.setdefault(model_type, class_names)
    return classes


def _module_name(model_type: str) -> str:
    """The `transformers.models` sub-package of a model type (maskformer-swin lives in maskformer)."""
    try:
        from transformers.models.auto.configuration_auto import model_type_to_module_name

        return str(model_type_to_module_name(model_type))
    except Exception:
        return model_type.replace("-", "_")


def _no_init() -> contextlib.AbstractContextManager[Any]:
    """transformers' own switch that skips weight initialisation: composites build on the meta device about
    1.5x faster without it, and the flags read do not depend on it."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()  # type: ignore[no-any-return]


def read_attention_support(shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """Every model type of the importable transformers' auto mappings (every `shard[1]`-th from `shard[0]`, so
    children can share the work), with its class's declared support.

    The class is the base model (`MODEL_MAPPING_NAMES`) where there is one, else the first head class.
    """
    import transformers
    from transformers.models.auto import modeling_auto

    version = transformers.__version__
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    classes = list(_model_classes(modeling_auto).items())[shard[0]::shard[1]]
    with _no_init():
        for model_type, class_names in classes:
            _read_row(model_type, class_names, version, rows, skipped)
    return {
        "schema_version": 1,
        "description": "Attention implementations each model type's class (its base model, else its first "
        "head class) declares, read from its support flags.",
        "transformers": version,
        "generated_by": "python -m advisor.knowledge.introspect",
        "source": f"transformers {version}: models.auto.modeling_auto.MODEL_MAPPING_NAMES (else the first "
        "head mapping that names the model type) and each class's "
        "_supports_sdpa / _supports_flash_attn(_2/_3) / _supports_flex_attn flags; from 5.0 also the flags of "
        "every sub-model that receives the request (built once on the meta device from the default config)",
        "architectures": rows,
        "skipped": skipped,
    }


def _read_row(model_type: str, class_names: Any, version: str, rows: list[dict[str, Any]], skipped: list[str]) -> None:
    import transformers

    names = class_names if isinstance(class_names, (list, tuple)) else (class_names,)
    class_name = names[0]
    try:
        cls = getattr(transformers, class_name)
    except Exception as exc:  # an optional dependency of one model must not stop the table
        try:
            module = importlib.import_module(f"transformers.models.{_module_name(model_type)}")
            cls = getattr(module, class_name)
        except Exception:
            skipped.append(f"{model_type}: {type(exc).__name__}: {exc}".splitlines()[0][:200])
            return
    support = composite_support(cls, model_type, version) or class_support(cls, version)
    rows.append({"model_type": model_type, "class": class_name, **support})


if __name__ == "__main__":
    # Some releases print to stdout while their classes import (4.57: "Config not found for parakeet"):
    # keep stdout for the JSON alone, so `> table.json` stays parseable.
    with contextlib.redirect_stdout(sys.stderr):
        table = read_attention_support()
    json.dump(table, sys.stdout, indent=1)
    sys.stdout.write("\n")
