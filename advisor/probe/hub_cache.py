"""Which Hub kernels are already in the local cache that `kernels` loads from: a directory listing, no network.

Why: from transformers 5.4 the fine-grained FP8 matmul is a Hub kernel (data/release_constraints.json
`fp8_hub_kernel`). The advisor's own loads run offline (advisor/isolation/child.py sets HF_HUB_OFFLINE=1), and
offline `kernels` resolves `get_kernel(repo, version=N)` only through the cache file `refs/v<N>`
(kernels 0.16.2 `_versions.py` `_get_available_versions_from_cache`: the cache is `KERNELS_CACHE`, else
huggingface_hub's HF_HUB_CACHE; the folder is `kernels--org--name`, or the legacy `models--org--name`). A
kernel fetched by commit, as `get_kernel` does when online, has a snapshot but no such ref. So each cached
kernel is listed once per ref that names a snapshot present here (`org/name@v4`), and a snapshot no ref names
by its commit (`org/name@<sha>`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cached_hub_kernels", "kernels_cache_root"]


def kernels_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """KERNELS_CACHE, else HF_HUB_CACHE (huggingface_hub.constants: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE,
    $HF_HOME/hub, ~/.cache/huggingface/hub)."""
    env = os.environ if environ is None else environ
    for var in ("KERNELS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(env[var]).expanduser()
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def _refs(folder: Path) -> dict[str, list[str]]:
    """commit -> the ref names pointing at it."""
    named: dict[str, list[str]] = {}
    refs = folder / "refs"
    for ref in sorted(refs.iterdir()) if refs.is_dir() else ():
        if ref.is_file():
            named.setdefault(ref.read_text(encoding="utf-8").strip(), []).append(ref.name)
    return named


def cached_hub_kernels(root: Path | None = None) -> list[str]:
    """`org/name@ref` for every Hub kernel snapshot in the cache (empty when there is no cache)."""
    root = kernels_cache_root() if root is None else root
    found: set[str] = set()
    try:
        folders = sorted(root.iterdir()) if root.is_dir() else []
        for folder in folders:
            kind, _, rest = folder.name.partition("--")
            org, _, name = rest.partition("--")
            if not name or not (kind == "kernels" or (kind == "models" and org == "kernels-community")):
                continue
            named = _refs(folder)
            snapshots = folder / "snapshots"
            for snapshot in sorted(snapshots.iterdir()) if snapshots.is_dir() else ():
                if snapshot.is_dir():  # a ref whose snapshot is gone does not count
                    found.update(f"{org}/{name}@{ref}" for ref in named.get(snapshot.name, [snapshot.name]))
    except OSError:
        return sorted(found)
    return sorted(found)
