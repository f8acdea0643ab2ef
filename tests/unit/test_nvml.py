"""The NVML layer against a fake pynvml module: normal cards, NotSupported fields, a lost GPU, no driver."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from advisor.facts import ComputeCapability, Unavailable
from advisor.probe import collect_environment
from advisor.probe.nvml import probe_nvml


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvml:
    """Just enough of pynvml; each GPU is a dict, and an exception value makes that query fail."""

    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, gpus: list[dict[str, Any]], init_error: Exception | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.shutdown_called = False

    def _get(self, handle: int, key: str) -> Any:
        value = self.gpus[handle][key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.95.05"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if isinstance(self.gpus[index].get("handle"), Exception):
            raise self.gpus[index]["handle"]
        return index

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return self._get(h, "name")

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self._get(h, "uuid")

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return self._get(h, "cc")

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        total, free = self._get(h, "mem")
        return SimpleNamespace(total=total, free=free, used=total - free)

    def nvmlDeviceGetMigMode(self, h: int) -> tuple[int, int]:
        return self._get(h, "mig")


def _gpu(**over: Any) -> dict[str, Any]:
    gpu = {"name": b"NVIDIA H100 80GB HBM3", "uuid": "GPU-1", "cc": (9, 0), "mem": (85520809984, 84000000000), "mig": (0, 0)}
    gpu.update(over)
    return gpu


def test_reads_every_field_and_shuts_down() -> None:
    fake = FakeNvml([_gpu(), _gpu(uuid="GPU-2")])
    result = probe_nvml(fake)
    assert not isinstance(result.gpus, Unavailable)
    assert [g.name for g in result.gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert result.gpus[0].compute_capability == ComputeCapability(major=9, minor=0)
    assert result.driver.cuda_driver_version == "13.0"
    assert fake.shutdown_called


def test_not_supported_degrades_one_field() -> None:
    fake = FakeNvml([_gpu(mig=NVMLError(3))])
    gpu = probe_nvml(fake).gpus[0]  # type: ignore[index]
    assert isinstance(gpu.mig_mode, Unavailable) and "does not support" in gpu.mig_mode.reason
    assert gpu.memory_total_bytes == 85520809984


def test_lost_gpu_keeps_its_slot_with_a_reason() -> None:
    fake = FakeNvml([_gpu(), _gpu(handle=NVMLError(15))])
    gpus = probe_nvml(fake).gpus
    assert len(gpus) == 2  # type: ignore[arg-type]
    assert isinstance(gpus[1].memory_total_bytes, Unavailable)  # type: ignore[index]
    assert "fallen off the bus" in gpus[1].memory_total_bytes.reason  # type: ignore[index, union-attr]


def test_missing_driver_is_unavailable_not_a_crash() -> None:
    result = probe_nvml(FakeNvml([], init_error=NVMLError(9)))
    assert isinstance(result.gpus, Unavailable)
    assert "no NVIDIA driver" in result.gpus.reason


def test_collect_environment_maps_capability_to_dtypes() -> None:
    env = collect_environment(nvml=FakeNvml([_gpu()]), import_checks=False)
    gpu = env.gpu_list[0]
    assert gpu.dtypes.bf16 and gpu.dtypes.fp8  # type: ignore[union-attr]
    assert gpu.source == "nvml"
    # the lost-GPU case flows through to the doctor report as a warning, not an exception
    env = collect_environment(nvml=FakeNvml([_gpu(handle=NVMLError(15))]), import_checks=False)
    assert isinstance(env.gpu_list[0].dtypes, Unavailable)


# ------------------------------------------------------------------ issue 30: the interconnect, per GPU pair


class FakeNvmlLinks(FakeNvml):
    """Adds NVLink and PCIe topology: each GPU dict may carry `bus`, `nvlinks` (remote bus ids; "switch:..." for an
    NVSwitch) and the topology level to every other GPU in `ancestor`."""

    NVML_NVLINK_MAX_LINKS = 18

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=self._get(h, "bus").encode())

    def _link(self, h: int, link: int) -> str:
        links = self._get(h, "nvlinks")
        if link >= len(links):
            raise NVMLError(3)
        return links[link]

    def nvmlDeviceGetNvLinkState(self, h: int, link: int) -> int:
        return 1 if self._link(h, link) else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h: int, link: int) -> Any:
        return SimpleNamespace(busId=self._link(h, link).removeprefix("switch:").encode())

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, h: int, link: int) -> int:
        return 2 if self._link(h, link).startswith("switch:") else 0

    def nvmlDeviceGetTopologyCommonAncestor(self, h1: int, h2: int) -> int:
        return self._get(h1, "ancestor")[h2]


def test_links_nvlink_pairs_pcie_pairs_and_a_switch() -> None:
    from advisor.facts import Environment

    gpus = [
        _gpu(bus="0000:01:00.0", nvlinks=["0000:02:00.0", "0000:02:00.0", ""], ancestor={1: 20, 2: 50}),
        _gpu(bus="0000:02:00.0", nvlinks=["0000:01:00.0", "0000:01:00.0"], ancestor={0: 20, 2: 50}),
        _gpu(bus="0000:81:00.0", nvlinks=[], ancestor={0: 50, 1: 50}),
    ]
    links = probe_nvml(FakeNvmlLinks(gpus)).links
    assert links is not None
    by_pair = {(link.a, link.b): link for link in links}
    assert by_pair[(0, 1)].kind == "nvlink" and by_pair[(0, 1)].nvlink_links == 2
    assert by_pair[(0, 2)].kind == "pcie" and by_pair[(0, 2)].pcie_level == "system"
    assert by_pair[(1, 2)].pcie_level == "system"
    # an HGX board: every GPU's links go to NVSwitches, so every pair has NVLink
    hgx = [_gpu(bus=f"0000:{i}1:00.0", nvlinks=[f"switch:0000:f{k}:00.0" for k in range(4)], ancestor={})
           for i in range(2)]
    (pair,) = probe_nvml(FakeNvmlLinks(hgx)).links or ()
    assert pair.kind == "nvlink" and pair.nvlink_links == 4
    # a GPU whose links cannot be read makes its pairs unknown, and the snapshot round-trips the links
    broken = [gpus[0], _gpu(bus=NVMLError(3), nvlinks=[], ancestor={})]
    (pair,) = probe_nvml(FakeNvmlLinks(broken)).links or ()
    assert pair.kind == "unknown"
    env = collect_environment(nvml=FakeNvmlLinks(gpus), import_checks=False)
    assert env.links == links
    assert Environment.model_validate_json(env.model_dump_json()).links == links


def test_one_gpu_or_an_old_snapshot_has_no_links() -> None:
    from advisor.facts import Environment

    env = collect_environment(nvml=FakeNvml([_gpu()]), import_checks=False)
    assert env.links is None
    old = json.loads(env.model_dump_json())
    old.pop("links")  # a snapshot written before issue 30
    assert Environment.model_validate(old).links is None
