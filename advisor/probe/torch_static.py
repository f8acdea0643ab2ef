"""torch's build read from its files, without `import torch` (which costs seconds).

`recommend` and `check` need torch's version, whether it is a CUDA, ROCm or CPU build, the cuDNN release
and the SDPA backends. The version comes from the distribution metadata, the CUDA/HIP build from the text
of `torch/version.py`, cuDNN from the `nvidia-cudnn-cu*` wheel (or the library file's major version), the
GPUs from NVML, and the SDPA backends from the same pure function the full probe uses. What only a live
torch can tell (a disabled SDPA backend, the C++ ABI) is left at its default. `doctor` and `probe` keep the
full probe (`torch_info.probe_torch`), which imports torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.version import InvalidVersion, Version

from advisor.facts import ComputeCapability, TorchInfo, Unavailable
from advisor.probe.torch_info import sdpa_backends

__all__ = ["TorchBuild", "read_torch_build", "static_torch_info", "torch_package_dir", "visible_device_count"]


@dataclass(frozen=True)
class TorchBuild:
    """What the files of an installed torch say about it."""

    version: str  # without the local part (+cpu, +cu130)
    cuda: str | None
    hip: str | None
    cudnn: str | None


def _field(text: str, name: str) -> str | None:
    """`name = 'value'` (or `name: type = 'value'`) from torch/version.py; None for a None or missing value."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.split(":")[0].strip() == name:
            value = value.strip().strip("'\"")
            return None if value in ("", "None") else value
    return None


def torch_package_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("torch")  # a top-level find_spec does not import the package
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _dist_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cudnn(cuda: str, package: Path, versions: Callable[[str], str | None]) -> str | None:
    """cuDNN's release: the pip wheel's version, else the major version of a bundled libcudnn.so.N."""
    major = cuda.split(".")[0]
    for dist in (f"nvidia-cudnn-cu{major}", "nvidia-cudnn"):
        found = versions(dist)
        if found:
            return ".".join(found.split(".")[:3])
    for lib in (package / "lib", package.parent / "nvidia" / "cudnn" / "lib"):
        for path in sorted(lib.glob("libcudnn.so.*")) if lib.is_dir() else ():
            match = re.match(r"libcudnn\.so\.(\d+(?:\.\d+)*)$", path.name)
            if match:
                return match.group(1) if "." in match.group(1) else f"{match.group(1)}.0"
    return None


def read_torch_build(
    package: Path | None = None, versions: Callable[[str], str | None] = _dist_version
) -> TorchBuild | Unavailable:
    """The installed torch's version and build, or why it cannot be read (`package`: torch's folder,
    None to find it)."""
    raw = versions("torch")
    if raw is None:
        return Unavailable(reason="torch is not installed: `pip install torch`")
    package = package or torch_package_dir()
    text = ""
    if package is not None:
        try:
            text = (package / "version.py").read_text(encoding="utf-8")
        except OSError:
            text = ""
    if not text:
        return Unavailable(reason="torch's version.py cannot be read, so its CUDA/ROCm build is unknown")
    version = (_field(text, "__version__") or raw).split("+")[0]
    try:
        Version(version)
    except InvalidVersion:
        return Unavailable(reason=f"torch reports an unreadable version {version!r}")
    cuda, hip = _field(text, "cuda"), _field(text, "hip")
    cudnn = _cudnn(cuda, package, versions) if cuda and package is not None else None
    return TorchBuild(version=version, cuda=cuda, hip=hip, cudnn=cudnn)


def visible_device_count(nvml_count: int, environ: dict[str, str] | None = None) -> int:
    """How many of NVML's GPUs CUDA will show, honouring CUDA_VISIBLE_DEVICES as torch does."""
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nvml_count
    count = 0
    for item in visible.split(","):
        item = item.strip()
        if not item or item.startswith("-"):  # CUDA stops at the first invalid entry
            break
        count += 1
    return min(count, nvml_count)


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def static_torch_info(
    build: TorchBuild, capabilities: Sequence[ComputeCapability], device_count: int, driver_cuda: str | None = None
) -> TorchInfo:
    """TorchInfo for this build with NVML's GPUs (`device_count` of them visible), as a live torch reports it.

    `driver_cuda` is the CUDA release the driver supports (NVML): a driver of an older CUDA major than the
    build's cannot run it, which is what `torch.cuda.is_available()` would find."""
    count = device_count if build.cuda else 0
    available: bool | Unavailable = count > 0
    have, need = _major(driver_cuda), _major(build.cuda)
    if count and have is not None and need is not None and have < need:
        available = Unavailable(reason=f"the NVIDIA driver supports CUDA {driver_cuda}, this torch is built for "
                                       f"CUDA {build.cuda}: update the driver or install a torch for CUDA {have}")
        count = 0
    return TorchInfo(
        version=build.version,
        cuda=build.cuda,
        hip=build.hip,
        cudnn=build.cudnn,
        cuda_available=available,
        device_count=count,
        sdpa_backends=sdpa_backends(
            build.version, cuda=build.cuda, hip=build.hip, cudnn=build.cudnn,
            capabilities=capabilities if count else (),
        ),
        flex_attention=Version(build.version) >= Version("2.5"),
    )
