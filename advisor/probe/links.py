"""How each pair of GPUs talks (issue 30): NVLink links up between them, else their PCIe topology level.

Why: tensor parallelism ends every layer in an all-reduce; over NVLink it is cheap, over PCIe it eats the gain.
Read from NVML, which `advisor.probe.nvml` passes in (initialised): per GPU, every NVLink that is up and the PCI
bus id at its other end (a peer GPU, or an NVSwitch, as on HGX boards: then every pair on the switch has
NVLink); for a pair without NVLink, `nvmlDeviceGetTopologyCommonAncestor` names the PCIe level joining them.
Each query degrades on its own: a GPU whose links cannot be read makes its pairs "unknown", never a crash.
"""

from __future__ import annotations

from typing import Any

from advisor.facts import GpuLink

__all__ = ["probe_links", "PCIE_LEVELS"]

# nvmlGpuTopologyLevel_t values
PCIE_LEVELS = {0: "internal", 10: "single", 20: "multiple", 30: "hostbridge", 40: "node", 50: "system"}
_FEATURE_ENABLED = 1
_SWITCH = 2  # NVML_NVLINK_DEVICE_TYPE_SWITCH


def _bus(info: Any) -> str:
    raw = getattr(info, "busId", b"")
    return (raw.decode() if isinstance(raw, bytes) else str(raw)).lower()


def _nvlinks(nvml: Any, handle: Any) -> list[tuple[str, bool]]:
    """(remote bus id, remote is a switch) for every NVLink that is up; [] where the GPU has none."""
    found = []
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != _FEATURE_ENABLED:
                continue
            remote = _bus(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link))
        except Exception:  # NotSupported / InvalidArgument past the last link: no more links
            continue
        try:
            switch = nvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link) == _SWITCH
        except Exception:
            switch = False
        found.append((remote, switch))
    return found


def probe_links(nvml: Any, count: int) -> tuple[GpuLink, ...]:
    """Every pair (a < b) of the `count` GPUs NVML sees, in NVML's index order."""
    handles: list[Any] = []
    buses: list[str] = []
    links: list[list[tuple[str, bool]] | None] = []
    for index in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            handles.append(handle)
            buses.append(_bus(nvml.nvmlDeviceGetPciInfo(handle)))
            links.append(_nvlinks(nvml, handle))
        except Exception:
            handles.append(None)
            buses.append("")
            links.append(None)
    pairs = []
    for a in range(count):
        for b in range(a + 1, count):
            mine, theirs = links[a], links[b]
            if mine is None or theirs is None:
                pairs.append(GpuLink(a=a, b=b, kind="unknown"))
                continue
            direct = sum(1 for remote, _ in mine if remote == buses[b])
            switched = min(sum(1 for _, s in mine if s), sum(1 for _, s in theirs if s))
            if direct or switched:
                pairs.append(GpuLink(a=a, b=b, kind="nvlink", nvlink_links=direct or switched))
                continue
            try:
                level = PCIE_LEVELS.get(int(nvml.nvmlDeviceGetTopologyCommonAncestor(handles[a], handles[b])))
            except Exception:
                level = None
            pairs.append(GpuLink(a=a, b=b, kind="pcie", pcie_level=level))
    return tuple(pairs)
