"""Which Hub kernels a transformers load needs: the release's kernel mapping, and the kernel layers the model has.

Why (issue 24): transformers 5.25 kernelizes every `from_pretrained` by default (`use_kernels=None` means True,
modeling_utils.py:4422-4423), and from 4.53 a user may ask for it. `kernels.kernelize` then walks the model and,
for each layer that carries a kernel layer name, looks the name up in the release's mapping
(`integrations/hub_kernels.py`) for the device and mode, and loads that repository from the Hub or its cache.
The repositories a load needs are therefore the mapping's entries for the layers this model has, on this device.

- The mapping: `data/hub_kernels.json` (scripts/generate_hub_kernels.py executes each release's mapping), or,
  for an installed release newer than the table, `advisor.knowledge.installed.release_info` (executed the same
  way in a child).
- The layers: read from the model built on the meta device (classes decorated with `use_kernel_forward_from_hub`,
  functions attached with `use_kernelized_func`): shipped models are in the same table per release; another
  config is read once in a child under the installed release and cached (`advisor.model.kernel_layers`).
- The selection follows kernels 0.19.1: the device type (`rocm` for AMD GPUs, as transformers'
  `get_device_type` reports them), then the smallest compute-capability interval holding the device's
  (`layer/repos.py:163-172`, `major * 10 + minor`), then the first mode of `_MODE_FALLBACK_PRIORITY[INFERENCE]`
  present (`layer/repos.py:202-244`: INFERENCE, INFERENCE|TORCH_COMPILE, TRAINING, TRAINING|TORCH_COMPILE,
  FALLBACK), because from_pretrained kernelizes an eval-mode model for inference (modeling_utils.py:3922-3924).

Anything not known stays unknown (None with the reason): never another release's or another model's answer.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.facts import GpuInfo

__all__ = [
    "TABLE_FILE",
    "KernelRepo",
    "TargetDevice",
    "device_of",
    "hub_kernel_table",
    "mapping_for",
    "needed_repos",
    "select",
    "stored_release",
]

TABLE_FILE = "hub_kernels.json"
_INFERENCE_PRIORITY = ("INFERENCE", "INFERENCE|TORCH_COMPILE", "TRAINING", "TRAINING|TORCH_COMPILE", "ANY", "FALLBACK")
_DEVICE_KEY = re.compile(r"^(?P<type>[a-z]+)(?:\[(?P<low>\d+)-(?P<high>\d+)\])?$")


@dataclass(frozen=True)
class KernelRepo:
    """One Hub repository a kernel layer loads from, as the release's mapping names it."""

    repo_id: str
    layer_name: str
    version: int | str | None = None  # a major version (kernels >= 0.16), or a range (older kernels)
    revision: str | None = None  # a branch or a commit; neither means "main" (older kernels' default)
    trust_remote_code: bool = False

    @property
    def ref(self) -> str:
        """`v2` for a major version (the branch kernels resolves offline through `refs/v2`), else the revision."""
        if isinstance(self.version, int):
            return f"v{self.version}"
        if isinstance(self.version, str):
            return f"version {self.version}"
        return str(self.revision or "main")

    @property
    def pinned_commit(self) -> bool:
        """A full commit: resolved without any ref, and a snapshot missing offline falls back to torch
        (kernels 0.19.1 `_resolve_ref` takes a SHA as is; FileNotFoundError is kernelize's CANNOT_LOAD)."""
        return self.version is None and bool(re.fullmatch(r"[0-9a-f]{40}", self.revision or ""))

    def install_call(self) -> str:
        """The `kernels.install_kernel(...)` arguments that fetch it, with its ref recorded for offline use."""
        pin = f"version={self.version}" if isinstance(self.version, int) else f"revision={self.revision or 'main'!r}"
        trust = ", trust_remote_code=True" if self.trust_remote_code else ""
        return f"install_kernel({self.repo_id!r}, {pin}{trust})"


@dataclass(frozen=True)
class TargetDevice:
    """The device kernelize runs for: kernels' device type and the capability it compares (major*10+minor)."""

    type: str  # "cuda", "rocm", "xpu", "cpu"
    capability: int | None = None
    label: str = ""


def device_of(gpu: GpuInfo | None) -> TargetDevice:
    """The kernels device of a GPU (None: the CPU). An AMD GPU's gfx arch gives its capability as torch reports
    it on ROCm (gfx942 -> 9.4, gfx1151 -> 11.5)."""
    if gpu is None:
        return TargetDevice("cpu", None, "cpu")
    from advisor.facts import known

    if gpu.vendor == "amd":
        cap = None
        m = re.fullmatch(r"gfx(\d+)([0-9a-f])([0-9a-f])", gpu.gfx_arch or "")
        if m:
            cap = int(m.group(1)) * 10 + int(m.group(2), 16)
        return TargetDevice("rocm", cap, f"rocm {gpu.gfx_arch or gpu.name}")
    cc = known(gpu.compute_capability)
    cap = cc.major * 10 + cc.minor if cc is not None else None
    return TargetDevice("cuda", cap, f"cuda sm{cap}" if cap is not None else "cuda (capability unknown)")


@lru_cache(maxsize=1)
def hub_kernel_table() -> dict[str, Any]:
    """`data/hub_kernels.json`, or an empty table when it is missing or unreadable."""
    from advisor.errors import DataTableError
    from advisor.knowledge import data_dir

    try:
        raw = json.loads((data_dir() / TABLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, DataTableError):
        return {}
    return raw if isinstance(raw, dict) else {}


def stored_release(release: str) -> str | None:
    """The table's release standing for `release`: the same release, or the stored patch of its minor."""
    from packaging.version import InvalidVersion, Version

    read = hub_kernel_table().get("read", {})
    if release in read:
        return release
    try:
        wanted = Version(release)
    except InvalidVersion:
        return None
    same = [r for r in read if (Version(r).major, Version(r).minor) == (wanted.major, wanted.minor)]
    return max(same, key=Version) if same else None


def _installed_newer(release: str) -> bool:
    from advisor.knowledge.installed import installed_version

    here = installed_version()
    return here is not None and here == release and stored_release(release) is None


def mapping_for(release: str | None, *, cache: bool = True) -> tuple[dict[str, Any] | None, str]:
    """The release's executed kernel mapping and where it comes from; None with the reason when unknown."""
    if release is None:
        return None, "the target's transformers version is unknown"
    stored = stored_release(release)
    table = hub_kernel_table()
    if stored is not None:
        row = table["read"][stored]
        if row.get("mapping") is None:
            return None, f"transformers {stored}'s mapping could not be read ({row.get('error') or 'no mapping'})"
        source = f"transformers {stored} integrations/hub_kernels.py (executed with kernels {row.get('kernels')}; " \
                 f"data/{TABLE_FILE})"
        return table["mappings"][row["mapping"]], source
    if _installed_newer(release):
        from advisor.knowledge.installed import installed, release_info

        inst = installed()
        info = release_info(inst, cache=cache) if inst is not None else None
        mapping = info.get("hub_kernels") if isinstance(info, dict) else None
        if isinstance(mapping, dict):
            return mapping, f"transformers {release} integrations/hub_kernels.py (installed, executed)"
        return None, f"transformers {release} is installed but its kernel mapping could not be executed here"
    return None, f"transformers {release} is neither in data/{TABLE_FILE} nor installed here"


def _repo(entry: dict[str, Any]) -> KernelRepo | None:
    repo_id = entry.get("repo_id")
    if not isinstance(repo_id, str):
        return None
    version = entry.get("version")
    revision = entry.get("revision")
    return KernelRepo(repo_id=repo_id, layer_name=str(entry.get("layer_name") or ""),
                      version=version if isinstance(version, (int, str)) else None,
                      revision=revision if isinstance(revision, str) else None,
                      trust_remote_code=entry.get("trust_remote_code") is True)


def select(mapping: dict[str, Any], layer: str, device: TargetDevice) -> KernelRepo | None:
    """The repository kernelize loads for `layer` on `device` in inference mode, or None (it keeps torch's)."""
    devices = mapping.get(layer)
    if not isinstance(devices, dict):
        return None
    candidates: list[tuple[int, dict[str, Any]]] = []
    for key, modes in devices.items():
        m = _DEVICE_KEY.match(str(key))
        if not m or m.group("type") != device.type or not isinstance(modes, dict):
            continue
        if m.group("low") is None:
            width = sys.maxsize  # no properties: capability 0 .. sys.maxsize (repos.py:176-178)
        else:
            low, high = int(m.group("low")), int(m.group("high"))
            if device.capability is None or not low <= device.capability <= high:
                continue  # an unknown capability matches only an unbounded entry
            width = high - low
        candidates.append((width, modes))
    if not candidates:
        return None
    modes = min(candidates, key=lambda c: c[0])[1]  # find_smallest_interval
    for mode in _INFERENCE_PRIORITY:
        if isinstance(modes.get(mode), dict):
            return _repo(modes[mode])
    return None


def needed_repos(mapping: dict[str, Any], layers: list[str], device: TargetDevice) -> dict[KernelRepo, list[str]]:
    """Each repository the load needs, with the model's layers that use it."""
    needed: dict[KernelRepo, list[str]] = {}
    for layer in layers:
        repo = select(mapping, layer, device)
        if repo is not None:
            needed.setdefault(repo, []).append(layer)
    return needed

