"""The kernel layers a model has under a transformers release: what `kernels.kernelize` would look up for it.

Shipped models are read from data/hub_kernels.json, and so are their relatives (the same classes with other
sizes: advisor.model.analysis.shipped_relative); another config is built on the meta device once, in a child
under the installed release (`advisor.model.layers_worker`), and cached. Which repository each layer loads is
the release's mapping, in `advisor.knowledge.hub_kernels`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from advisor.knowledge.hub_kernels import TABLE_FILE, hub_kernel_table, stored_release
from advisor.model.spec import ModelSpec

__all__ = ["model_layers"]

_CHILD_TIMEOUT_S = 300.0


def _model_key(model: ModelSpec) -> dict[str, Any]:
    from advisor.model.analysis import count_key

    return count_key(dict(model.config), model.architecture, model.trust_remote_code)


def model_layers(model: ModelSpec, release: str | None, *, cache: bool = True) -> tuple[list[str] | None, str]:
    """The kernel layer names the model has under `release`, and where that answer comes from (`cache=False`:
    --no-cache, the user's analysis cache neither read nor written)."""
    if release is None:
        return None, "the target's transformers version is unknown"
    if not model.config:
        return None, "the model's config is not at hand"
    from advisor.io import analysis_cache

    key = _model_key(model)
    digest = analysis_cache.content_hash(key)
    stored = stored_release(release)
    if stored is not None:
        rows = hub_kernel_table().get("models", {})
        row = rows.get(digest)
        relative = None
        if not isinstance(row, dict) and not model.trust_remote_code:  # the classes decide, not the sizes
            from advisor.model.analysis import shipped_relative

            relative = shipped_relative(dict(model.config), model.architecture, release)
            row = next((r for r in rows.values() if isinstance(r, dict) and relative and r.get("hub_id") == relative),
                       None)
        if isinstance(row, dict) and stored in row.get("layers", {}):
            value = row["layers"][stored]
            if isinstance(value, list):
                source = f"{row.get('hub_id')} built on the meta device under transformers {stored} (data/{TABLE_FILE})"
                if relative:
                    source = f"as its relative {source}: the same classes, other sizes"
                return [str(v) for v in value], source
    from advisor.knowledge.installed import installed_version

    if installed_version() != release:
        return None, (f"not known: the model is not shipped and transformers {release} is not installed here "
                      "(its classes decide which layers kernelize)")
    from advisor.model import layers_worker

    stamp = f"kernels={_kernels_version()}," + analysis_cache.source_stamp(layers_worker.kernel_layers)
    hit = analysis_cache.get("kernel-layers", key, transformers=release, extra=stamp, use=cache)
    if isinstance(hit, list):
        return [str(v) for v in hit], f"built on the meta device under transformers {release} (cached)"
    answer = _read_here(key, model) if _here() else _read_in_child(key, model)
    if answer is None:
        return None, f"not known: building the model on the meta device under transformers {release} failed"
    analysis_cache.put("kernel-layers", key, answer, transformers=release, extra=stamp, use=cache)
    return answer, f"built on the meta device under transformers {release}"


def _kernels_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("kernels")
    except metadata.PackageNotFoundError:
        return None


def _here() -> bool:
    """Whether this process can answer as the child would: transformers is imported already (describing the
    config built it on the meta device: issue 27, a second import in a child cost 3-10 s) and USE_HUB_KERNELS,
    which transformers 5.0-5.24 read at import and the child leaves out, is unset."""
    from advisor import env as envvars

    return "transformers" in sys.modules and envvars.read(envvars.USE_HUB_KERNELS) is None


def _read_here(key: dict[str, Any], model: ModelSpec) -> list[str] | None:
    """What `layers_worker.kernels` answers for this one config, in this process."""
    from advisor.knowledge.derive_worker import kernel_layers
    from advisor.model.meta import build_on_meta

    item = _request(key, model)
    try:
        return [str(v) for v in kernel_layers(build_on_meta(item["config"], item["architecture"],
                                                            bool(item["trust_remote_code"])))]
    except Exception:  # noqa: BLE001 - a class that refuses the config, as in the child: not known
        return None


def _request(key: dict[str, Any], model: ModelSpec) -> dict[str, Any]:
    return {"key": "model", "config": key["config"] | {"model_type": model.model_type},
            "architecture": model.architecture, "trust_remote_code": model.trust_remote_code}


def _read_in_child(key: dict[str, Any], model: ModelSpec) -> list[str] | None:
    """`advisor.model.layers_worker` for this one config (imports transformers in a child, offline, with the
    kernels decorators live: USE_HUB_KERNELS is removed, as transformers 5.0-5.24 read it at import)."""
    from pathlib import Path

    from advisor.knowledge.installed import child_env

    env = {k: v for k, v in child_env().items() if k != "USE_HUB_KERNELS"}
    root = Path(__file__).resolve().parents[2]
    if root.name not in ("site-packages", "dist-packages"):  # a checkout: the child imports this advisor
        env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    request = [_request(key, model)]
    try:
        done = subprocess.run([sys.executable, "-m", "advisor.model.layers_worker"],
                              input=json.dumps(request), capture_output=True, text=True, env=env,
                              timeout=_CHILD_TIMEOUT_S, check=False)
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    value = answer.get("layers", {}).get("model") if isinstance(answer, dict) else None
    return [str(v) for v in value] if isinstance(value, list) else None
