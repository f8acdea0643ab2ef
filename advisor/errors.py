"""The advisor's errors. Messages are built here so every caller says the same thing; only the CLI exits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from advisor.findings import Finding

__all__ = [
    "AdvisorError",
    "UsageError",
    "DataTableError",
    "EnvironmentFileError",
    "OutputFileError",
    "UnknownGpuError",
    "ModelResolutionError",
    "NoViablePlanError",
    "SmokeTestError",
    "OnnxEnvironmentError",
    "InputFileError",
    "ManifestError",
    "RemoteCodeError",
]


class AdvisorError(Exception):
    """Base class: a problem the user can fix; printed as one line, never as a traceback."""

    exit_code = 2


class UsageError(AdvisorError, ValueError):
    """A bad argument or combination of arguments."""


class DataTableError(AdvisorError):
    """A shipped table is missing or does not match its schema (a packaging bug)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"data table {path} is invalid: {problem}; reinstall the advisor or run its refresh script")


class EnvironmentFileError(AdvisorError):
    """An --env file that cannot be read or does not hold a snapshot."""

    def __init__(self, path: str, problem: str) -> None:
        fix = "" if "advisor probe" in problem else "; write one with `advisor probe -o FILE.json`"
        super().__init__(f"cannot use environment file {path}: {problem}{fix}")


class OutputFileError(AdvisorError):
    """An output path (-o, --plot) that cannot or must not be written; the old file is left as it was."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        super().__init__(f"cannot write {path}: {problem}; {fix}")


class UnknownGpuError(AdvisorError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        close = _close_gpus(name, known)
        if close:
            super().__init__(f"unknown GPU {name!r}; did you mean {', '.join(close)}? "
                             "(or describe a machine with --env FILE)")
        else:
            super().__init__(f"unknown GPU {name!r}; known GPUs: {', '.join(known)} "
                             "(or describe a machine with --env FILE)")


def _close_gpus(name: str, known: list[str]) -> list[str]:
    """The variants a short name stands for (A100 -> A100-40GB, A100-80GB), else the near spellings."""
    import difflib

    wanted = name.strip().lower()
    variants = [k for k in known if k.lower().startswith(wanted) and len(wanted) >= 2]
    if variants:
        return variants
    lowered = {k.lower(): k for k in known}
    return [lowered[c] for c in difflib.get_close_matches(wanted, list(lowered), n=3, cutoff=0.6)]


class ModelResolutionError(AdvisorError):
    """A MODEL argument that names nothing usable offline."""


class NoViablePlanError(AdvisorError):
    """Every candidate configuration was rejected; carries every reason."""

    exit_code = 1

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__(f"no configuration can run this model on this target ({len(findings)} reasons)")


class SmokeTestError(AdvisorError):
    """The smoke test could not even start (bad checkpoint, no weights)."""


class OnnxEnvironmentError(AdvisorError):
    """The installed libraries cannot run the ONNX Runtime path (e.g. transformers outside optimum-onnx's pin).

    Exit 1, not 2: the command was right, this environment is what fails the check."""

    exit_code = 1


class InputFileError(UsageError):
    """A user file that cannot be used; `shown` is its printable name, `problem` what is wrong with it."""

    def __init__(self, what: str, shown: str, problem: str) -> None:
        self.shown, self.problem = shown, problem
        super().__init__(f"{what} {shown}: {problem}")


class ManifestError(UsageError):
    """A manifest that cannot be used: names the file, the line and the field."""

    def __init__(self, path: Path, line: int | None, field: str, problem: str) -> None:
        self.path, self.line, self.field = path, line, field
        where = f"{path}, line {line}" if line is not None else f"{path}"
        what = f", field {field}" if field else ""
        super().__init__(f"manifest {where}{what}: {problem}; see `advisor explain manifest`")


class RemoteCodeError(UsageError):
    """A file asked for code to be run or fetched; only the user's flag may (exit 2)."""
