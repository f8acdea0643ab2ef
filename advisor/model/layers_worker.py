"""Child of `advisor.model.kernel_layers` (and scripts/generate_hub_kernels.py): the installed release's Hub-kernel
mapping and the kernel layers each requested config has, built on the meta device.

    python -m advisor.model.layers_worker     # stdin: [{key, config, architecture}]; the mapping and the layers

Why a child: importing transformers and a model class takes seconds and may fail for one model's optional
dependency; the parent stays light and only reads the JSON on stdout.
"""

from __future__ import annotations

from typing import Any

from advisor.isolation.reader import serve
from advisor.knowledge.derive_worker import hub_kernel_mapping, kernel_layers

__all__ = ["kernel_layers", "kernels", "main"]


def kernels(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The release's Hub-kernel mapping and, for each requested config (built on the meta device, as
    `advisor.model.meta.build_on_meta` builds it), the kernel layers it has; null where the build fails."""
    import transformers

    from advisor.model.meta import build_on_meta

    try:
        from importlib import metadata

        kernels_version: str | None = metadata.version("kernels")
    except Exception:  # noqa: BLE001 - not installed
        kernels_version = None
    layers: dict[str, list[str] | None] = {}
    errors: dict[str, str] = {}
    for item in requests:
        try:
            model = build_on_meta(item["config"], item.get("architecture"), bool(item.get("trust_remote_code")))
            layers[item["key"]] = kernel_layers(model)
        except Exception as exc:  # noqa: BLE001 - a class that refuses the config: unknown, never guessed
            layers[item["key"]] = None
            errors[item["key"]] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return {"transformers": transformers.__version__, "kernels": kernels_version,
            "mapping": hub_kernel_mapping(), "layers": layers, "errors": errors}


def main() -> int:
    return serve(lambda payload: kernels(payload or []))  # the frame every transformers reader shares


if __name__ == "__main__":
    raise SystemExit(main())
