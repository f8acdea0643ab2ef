"""Child of `advisor.knowledge.installed`: it imports the installed transformers and reports what it executes.

Why a child: importing transformers and every model class takes seconds and hundreds of MB, prints to stderr
and may fail for one model's optional dependency; the parent stays light and only reads the JSON on stdout.

    python -m advisor.knowledge.derive_worker info        # model types, positions, Hub-kernel mapping
    python -m advisor.knowledge.derive_worker attention   # stdin: [shard, of]; an AttentionSupportTable

The kernel layers each model has (a meta-device build) are read by `advisor.model.layers_worker`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from advisor.isolation.reader import serve

__all__ = ["main"]


def _repo(layer: Any) -> dict[str, Any]:
    """A `kernels.LayerRepository` as data (its attribute names moved between kernels releases)."""
    out: dict[str, Any] = {}
    for key in ("repo_id", "layer_name", "version", "revision", "trust_remote_code"):
        for attr in (key, f"_{key}"):
            value = getattr(layer, attr, None)
            if isinstance(value, (str, int, bool)) and not isinstance(value, type):
                out[key] = value
                break
    if "repo_id" not in out:
        out["repo"] = str(layer)[:200]
    return out


def hub_kernel_mapping() -> dict[str, Any] | None:
    """The release's default kernel mapping (`integrations/hub_kernels.py`), executed: layer name -> device ->
    mode -> repository. None when the release has no such mapping or `kernels` is missing."""
    try:
        from transformers.integrations import hub_kernels
    except Exception:  # no such module in this release, or it fails to import: the mapping is unknown
        return None
    build = getattr(hub_kernels, "get_kernel_mapping_transformers", None)
    build = build or getattr(hub_kernels, "_KERNEL_MAPPING", None)
    try:
        mapping = build() if callable(build) else build
    except Exception:  # `kernels` missing or incompatible: the stub raises
        return None
    if not isinstance(mapping, dict):
        return None
    out: dict[str, Any] = {}
    for name, devices in mapping.items():
        row: dict[str, Any] = {}
        for device, entry in (devices or {}).items():
            where = getattr(device, "type", None) or str(device)
            props = getattr(device, "properties", None)
            if props is not None:
                low, high = getattr(props, "min_capability", None), getattr(props, "max_capability", None)
                where = f"{where}[{low}-{high}]"
            if isinstance(entry, dict):
                row[where] = {str(getattr(mode, "name", mode)): _repo(repo) for mode, repo in entry.items()}
            else:
                row[where] = {"ANY": _repo(entry)}
        out[str(name)] = row
    return out


def kernel_layers(model: Any) -> list[str]:
    """The kernel layer names `kernels.kernelize` looks up for this model, read as kernelize walks it (kernels
    0.19.1 layer/kernelize.py:269-296): each module whose class carries `kernel_layer_name` (set by
    `use_kernel_forward_from_hub`) and whose `kernel_condition` holds, and each function attached to a module
    by `use_kernelized_func` (its `_kernel_funcs`). A condition that cannot be evaluated here (meta tensors)
    counts the layer: kernelize would ask for its kernel. In the order kernelize first meets them (the first
    kernel it loads is the first that can fail)."""
    names: dict[str, None] = {}
    for module in model.modules():
        for func in getattr(module, "_kernel_funcs", {}).values():
            name = getattr(type(func), "kernel_layer_name", None) or getattr(func, "kernel_layer_name", None)
            if name:
                names.setdefault(str(name))
        name = getattr(type(module), "kernel_layer_name", None)
        if not name:
            continue
        condition = getattr(type(module), "kernel_condition", None)
        try:
            skipped = condition is not None and not condition(module)
        except Exception:  # noqa: BLE001 - unknown on meta: kernelize would try the kernel
            skipped = False
        if not skipped:
            names.setdefault(str(name))
    return list(names)


def info() -> dict[str, Any]:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # type: ignore[attr-defined]

    from advisor.knowledge.position_reader import read_position_kinds

    return {
        "transformers": transformers.__version__,
        "model_types": sorted(CONFIG_MAPPING_NAMES),
        "positions": read_position_kinds(),
        "hub_kernels": hub_kernel_mapping(),
    }


def attention(shard: list[int]) -> dict[str, Any]:
    from advisor.knowledge.introspect import read_attention_support

    return read_attention_support((int(shard[0]), int(shard[1])))


def main(argv: list[str]) -> int:
    parts: dict[str, Callable[[Any], Any]] = {"info": lambda _: info(), "attention": attention}
    part = parts.get(argv[0] if argv else "")
    return 2 if part is None else serve(part)  # the frame every transformers reader shares


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
