"""Bounds on a snapshot loaded from a file (--env): what a stranger's JSON must satisfy beyond its shape.

NOTE (issue 15): `Environment` describes what a probe can produce; a hand-written or mutated file can
still hold a garbage torch version, a negative `device_count` or negative memory, and was planned with
exit 0 (or crashed later in `Version(...)`). These models check the raw JSON before `Environment` is
built: counts and byte sizes within sane ranges, and every version one that `packaging` parses.
Unknown keys are left to `Environment` (which forbids them).

Issue 25: the figures must also agree with each other: free memory at most the total (GPU and host), and each
GPU index once (a snapshot with free above total, or two GPUs at index 0, was planned).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from advisor.io.read_input import field_name

__all__ = ["snapshot_problem"]

_MAX_BYTES = 1 << 60  # 1 EiB: far above any host RAM or GPU memory
_MAX_DEVICES = 1024


def _version(text: str) -> str:
    try:
        Version(text)
    except InvalidVersion:
        raise ValueError(f"{text[:40]!r} is not a version number (PEP 440)") from None
    return text


VersionText = Annotated[str, AfterValidator(_version)]
Bytes = Annotated[StrictInt, Field(ge=0, le=_MAX_BYTES)]
Count = Annotated[StrictInt, Field(ge=0, le=_MAX_DEVICES)]
CpuCount = Annotated[StrictInt, Field(ge=0, le=1 << 20)]
CcPart = Annotated[StrictInt, Field(ge=0, le=99)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Unavailable(_Loose):
    unavailable: Literal[True]


class _Cc(_Loose):
    major: CcPart
    minor: CcPart


def _at_most(free: Any, total: Any, what: str) -> None:
    if isinstance(free, int) and isinstance(total, int) and free > total:
        raise ValueError(f"{what} {free} is above the total {total}; fix or re-probe the snapshot")


class _Gpu(_Loose):
    index: Count
    compute_capability: _Cc | _Unavailable | None = None
    memory_total_bytes: Bytes | _Unavailable
    memory_free_bytes: Bytes | _Unavailable

    @model_validator(mode="after")
    def _free_within_total(self) -> _Gpu:
        _at_most(self.memory_free_bytes, self.memory_total_bytes, "memory_free_bytes")
        return self


class _Torch(_Loose):
    version: VersionText
    device_count: Count | _Unavailable = 0


class _Library(_Loose):
    version: VersionText | None = None


class _Host(_Loose):
    cpu_count: CpuCount | _Unavailable
    ram_total_bytes: Bytes | _Unavailable
    ram_available_bytes: Bytes | _Unavailable

    @model_validator(mode="after")
    def _available_within_total(self) -> _Host:
        _at_most(self.ram_available_bytes, self.ram_total_bytes, "ram_available_bytes")
        return self


class _Snapshot(_Loose):
    host: _Host
    gpus: Annotated[list[_Gpu], Field(max_length=_MAX_DEVICES)] | _Unavailable = []
    torch: _Torch | _Unavailable
    libraries: dict[str, _Library] = {}

    @model_validator(mode="after")
    def _distinct_indexes(self) -> _Snapshot:
        if isinstance(self.gpus, list):
            seen: set[int] = set()
            for gpu in self.gpus:
                if gpu.index in seen:
                    raise ValueError(f"GPU index {gpu.index} appears twice; each GPU of a machine has its own index")
                seen.add(gpu.index)
        return self


def snapshot_problem(raw: dict[str, Any]) -> str | None:
    """The first out-of-bounds field of a snapshot as `field: problem`, or None when it is within bounds."""
    try:
        _Snapshot.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A union reports one error per branch; the one deepest in the JSON says what is really wrong.
        first = max(errors, key=lambda e: len([p for p in e["loc"] if not _is_branch(p)]))
        loc = tuple(p for p in first["loc"] if not _is_branch(p))
        got = repr(first.get("input"))
        got = (got if len(got) <= 40 else got[:37] + "...").encode("ascii", "backslashreplace").decode("ascii")
        msg = str(first["msg"]).removeprefix("Value error, ")
        return f"field {field_name(loc)}: {msg} (got {got})"
    return None


def _is_branch(part: Any) -> bool:
    """Union branch names pydantic puts in a location (`int`, `_Unavailable`, `constrained-int`...)."""
    return isinstance(part, str) and (
        part.startswith(("_", "function-", "constrained-")) or "[" in part or part in ("int", "str", "bool", "none")
    )
