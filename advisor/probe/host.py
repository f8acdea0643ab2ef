"""Host facts from the standard library and /proc: no psutil needed."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from advisor.facts import HostInfo, Unavailable

__all__ = ["probe_host"]


def _meminfo(field: str, proc: Path) -> int | Unavailable:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError as exc:
        return Unavailable(reason=f"cannot read {proc / 'meminfo'}: {exc.strerror}")
    return Unavailable(reason=f"{field} missing from {proc / 'meminfo'}")


def _cpu_name(proc: Path) -> str | Unavailable:
    try:
        for line in (proc / "cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or Unavailable(reason="the CPU model is not reported on this OS")


def probe_host(proc: Path = Path("/proc")) -> HostInfo:
    cpus = os.cpu_count()
    return HostInfo(
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        machine=platform.machine(),
        cpu=_cpu_name(proc),
        cpu_count=cpus if cpus else Unavailable(reason="os.cpu_count() returned None"),
        ram_total_bytes=_meminfo("MemTotal", proc),
        ram_available_bytes=_meminfo("MemAvailable", proc),
        hostname=platform.node() or None,
    )
