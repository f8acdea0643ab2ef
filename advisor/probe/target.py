"""The machine to plan for: this one, a saved snapshot, or one described by name.

Every planning command takes the same options (`--env`, `--gpu`, `--cpu`, `--assume`, `--without`);
this module turns them into one `Environment`, so rules never know where the facts came from.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version
from pydantic import ValidationError

from advisor.errors import EnvironmentFileError, InputFileError, UsageError
from advisor.facts import (
    SCHEMA_VERSION,
    ComputeCapability,
    Environment,
    GpuInfo,
    GpuLink,
    LibraryInfo,
    TorchInfo,
    Unavailable,
    known,
)
from advisor.io.read_input import SNAPSHOT_MAX_BYTES, field_name, printable, read_json_file
from advisor.io.write_output import write_output
from advisor.knowledge import Knowledge, load_knowledge
from advisor.knowledge.schema import GpuRow
from advisor.probe.host import probe_host
from advisor.probe.hub_access import probe_hub_access
from advisor.probe.packages import LIBRARIES, probe_libraries
from advisor.probe.snapshot_schema import snapshot_problem
from advisor.probe.torch_info import sdpa_backends

__all__ = ["TargetSpec", "resolve_target", "load_environment", "save_environment", "environment_for_gpus"]

_ASSUME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^=\s]+)$")


@dataclass(frozen=True)
class TargetSpec:
    """What the user asked to plan for; empty means this machine."""

    env_file: Path | None = None
    gpus: Sequence[str] = ()
    cpu: bool = False
    assume: Sequence[str] = ()
    without: Sequence[str] = ()
    import_checks: bool = True
    import_torch: bool = True  # False: read torch's build from its files (recommend, check; issue 14)
    kernel_runs: bool = True
    cache: bool = True  # False (--no-cache): the probe neither reads nor writes the analysis cache
    env: Environment | None = field(default=None, compare=False)


def _text_report(path: Path) -> bool:
    """Whether `path` starts like probe's or doctor's text report."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(64).startswith("Inference Advisor ")
    except OSError:
        return False


def load_environment(path: Path) -> Environment:
    try:
        raw = read_json_file(path, what="environment file", limit=SNAPSHOT_MAX_BYTES)
    except InputFileError as exc:
        if _text_report(path):  # issue 31: `probe -o snap.txt` (or an old advisor's `-o snap.json`) wrote the text
            raise EnvironmentFileError(exc.shown, "it holds probe's text report, not its JSON snapshot; "
                                       "re-run `advisor probe --format json -o FILE`") from None
        raise EnvironmentFileError(exc.shown, exc.problem) from None
    if isinstance(raw, dict) and "host" not in raw:
        raw = raw.get("environment", raw)  # accept `doctor --format json` output too
    if not isinstance(raw, dict):
        raise EnvironmentFileError(printable(path), "not a snapshot object")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise EnvironmentFileError(
            printable(path), f"schema_version {raw.get('schema_version')!r}, this advisor reads {SCHEMA_VERSION}"
        )
    problem = snapshot_problem(raw)
    if problem is not None:
        raise EnvironmentFileError(printable(path), problem)
    try:
        env = Environment.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise EnvironmentFileError(printable(path), f"{field_name(first['loc'])}: {first['msg']}") from None
    return env


def snapshot_label(path: Path, env: Environment) -> str:
    """'snapshot FILE (created DATE on HOST)': a target read from a file never claims "probed on this machine"."""
    when = (env.created_at or "")[:10] or "an unknown date"
    host = getattr(env.host, "hostname", None)
    extra = "" if env.description in ("", "probed on this machine") else f"; {env.description}"
    return f"snapshot {path.name} (created {when}{' on ' + host if host else ''}{extra})"


def save_environment(env: Environment, path: Path) -> None:
    write_output(path, env.model_dump_json(indent=1) + "\n")


def _capabilities(gpus: Sequence[GpuInfo]) -> list[ComputeCapability]:
    return [cc for g in gpus if (cc := known(g.compute_capability)) is not None]


def _gpu_from_row(index: int, row: GpuRow, knowledge: Knowledge) -> GpuInfo:
    cc = ComputeCapability.parse(row.compute_capability) if row.compute_capability else None
    memory = row.memory_mib * 1024 * 1024
    return GpuInfo(
        index=index,
        name=row.name,
        vendor=row.vendor,
        compute_capability=cc,
        gfx_arch=row.gfx_arch,
        memory_total_bytes=memory,
        memory_free_bytes=Unavailable(reason="a GPU from the table: planning with its total memory"),
        dtypes=knowledge.dtype_support(cc, row.gfx_arch),
        source="gpu-table",
    )


def _synthetic_torch(version: str | None, gpus: Sequence[GpuInfo]) -> TorchInfo | Unavailable:
    if version is None:
        return Unavailable(reason="torch is not installed here; say which with --assume torch==VERSION")
    version = version.split("+")[0]
    amd = any(g.vendor == "amd" for g in gpus)
    cuda = None if not gpus or amd else "assumed"
    hip = "assumed" if amd else None
    ccs = _capabilities(gpus)
    return TorchInfo(
        version=version,
        cuda=cuda,
        hip=hip,
        cuda_available=bool(gpus),
        device_count=len(gpus),
        sdpa_backends=sdpa_backends(version, cuda=cuda, hip=hip, cudnn="9.1" if cuda else None, capabilities=ccs),
        flex_attention=Version(version) >= Version("2.5"),
        assumed=True,
    )


def environment_for_gpus(
    names: Sequence[str], *, libraries: dict[str, LibraryInfo], knowledge: Knowledge | None = None
) -> Environment:
    """A machine with these GPUs from the table (or none), this host and the given libraries."""
    knowledge = knowledge or load_knowledge()
    gpus = tuple(_gpu_from_row(i, knowledge.gpu(name), knowledge) for i, name in enumerate(names))
    torch_lib = libraries.get("torch")
    torch_version = torch_lib.version if torch_lib is not None and torch_lib.installed else None
    label = " + ".join(g.name for g in gpus) + " (from the GPU table)" if gpus else "a CPU-only machine"
    return Environment(
        source="synthetic",
        description=f"{label}, with this machine's libraries",
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=probe_host(),
        gpus=gpus,
        torch=_synthetic_torch(torch_version, gpus),
        libraries=libraries,
        hub=probe_hub_access(),  # this machine's Hub variables, as its libraries
        links=table_links(names, knowledge) if len(gpus) > 1 else None,
    )


def table_links(names: Sequence[str], knowledge: Knowledge) -> tuple[GpuLink, ...]:
    """Issue 30: each pair's link from the GPU table's defaults: NVLink only where both cards default to it."""
    rows = [knowledge.gpu(name) for name in names]
    links = []
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            kinds = {rows[a].interconnect, rows[b].interconnect}
            kind = "nvlink" if kinds == {"nvlink"} else "pcie" if "pcie" in kinds else "unknown"
            links.append(GpuLink(a=a, b=b, kind=kind, source="gpu-table"))
    return tuple(links)


def _apply_overrides(env: Environment, assume: Sequence[str], without: Sequence[str]) -> Environment:
    if not assume and not without:
        return env
    libraries = dict(env.libraries)
    known_imports = {spec.distribution: spec.import_name for spec in LIBRARIES}
    torch_version: str | None = None
    for item in assume:
        match = _ASSUME.match(item.strip())
        if not match:
            raise UsageError(f"--assume {item!r}: expected DIST==VERSION, e.g. --assume flash-attn==2.8.3")
        dist, version = match.group(1).lower(), match.group(2)
        try:
            Version(version)
        except InvalidVersion:
            raise UsageError(f"--assume {item!r}: {version!r} is not a version number") from None
        libraries[dist] = LibraryInfo(
            distribution=dist,
            import_name=known_imports.get(dist, dist.replace("-", "_")),
            installed=True,
            version=version,
            importable=True,
            assumed=True,
        )
        if dist == "torch":
            torch_version = version
    for dist in without:
        dist = dist.strip().lower()
        if not dist:
            raise UsageError("--without needs a distribution name, e.g. --without bitsandbytes")
        libraries[dist] = LibraryInfo(
            distribution=dist, import_name=known_imports.get(dist, dist.replace("-", "_")), installed=False, assumed=True
        )
    update: dict[str, object] = {"libraries": libraries}
    if "torch" in [d.strip().lower() for d in without]:
        update["torch"] = Unavailable(reason="assumed absent (--without torch)")
    elif torch_version is not None:
        update["torch"] = _retarget_torch(env, torch_version)
    return env.model_copy(update=update)


def _retarget_torch(env: Environment, version: str) -> TorchInfo:
    current = env.torch if isinstance(env.torch, TorchInfo) else _synthetic_torch(version, env.gpu_list)
    assert isinstance(current, TorchInfo)
    ccs = _capabilities(env.gpu_list)
    cuda = current.cuda or ("assumed" if env.gpu_list and not current.hip else None)
    return current.model_copy(
        update={
            "version": version,
            "cuda": cuda,
            "sdpa_backends": sdpa_backends(version, cuda=cuda, hip=current.hip, cudnn=current.cudnn or ("9.1" if cuda else None), capabilities=ccs),
            "flex_attention": Version(version) >= Version("2.5"),
            "assumed": True,
        }
    )


def resolve_target(spec: TargetSpec, *, knowledge: Knowledge | None = None) -> Environment:
    """One Environment from the target options; bad options raise a one-line AdvisorError."""
    chosen = sum(bool(x) for x in (spec.env_file, spec.gpus, spec.cpu, spec.env))
    if chosen > 1:
        raise UsageError("choose one target: --env FILE, --gpu NAME (repeatable) or --cpu")
    knowledge = knowledge or load_knowledge(cache=spec.cache)
    if spec.env is not None:
        env = spec.env
    elif spec.env_file is not None:
        env = load_environment(spec.env_file)
        env = env.model_copy(update={"description": snapshot_label(spec.env_file, env)})
    elif spec.gpus or spec.cpu:
        env = environment_for_gpus(list(spec.gpus), libraries=probe_libraries(import_checks=False), knowledge=knowledge)
    else:
        from advisor.probe import collect_environment

        env = collect_environment(import_checks=spec.import_checks, knowledge=knowledge, import_torch=spec.import_torch,
                                  kernel_runs=spec.kernel_runs, cache=spec.cache)
    return _apply_overrides(env, spec.assume, spec.without)
