"""What the target's transformers release does with a quantization method here, executed
(`data/quantizer_acceptance.json`, made by running each stored release's quantizers: `advisor.knowledge.quantizer_run`).

Why: the requirements and fallbacks of `data/quant_methods.json` were read from one release and applied to all
(issue 28). Here each answer is the target release's own: its quantizer's `validate_environment` and
`update_dtype`, run under the target's conditions (CUDA or not, the compute capability, which of the method's
packages are installed). One case answers: accepted, refused (with the release's exception and line), dequantizes
(the load works at the unquantized size, with the warning), or undecided; and the dtype it loads a requested
bfloat16 as. A release newer than the table is run here once, from the installed package, when it is the installed
one (`advisor.knowledge.installed.quantizer_rows`, cached); otherwise its answer is unknown, never another
release's row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from advisor.facts import ComputeCapability
from advisor.knowledge.loader import data_dir

__all__ = ["QuantizerCase", "QuantizerVerdict", "Unknown", "compact_case", "quantizer_verdict"]

TABLE = "quantizer_acceptance.json"
# A refusal is a check the release makes (ImportError, ValueError, RuntimeError ...); these are Python errors its
# code hits under the harness's configs (5.16.1's FP8 TP-plan update on a config without experts), not verdicts.
_NOT_A_CHECK = ("AttributeError", "TypeError", "NameError", "KeyError")


@dataclass(frozen=True)
class QuantizerCase:
    """One executed condition: the device ('cpu' or a compute capability), the packages absent, and the outcome."""

    device: str
    absent: tuple[str, ...]
    verdict: str  # accepted | refused | dequantizes | undecided
    detail: str | None  # the exception's first line, or the dequantizing warning
    raised_at: str | None  # the release's file:line that raised
    dtype_for_bfloat16: str | None  # what update_dtype makes of a requested bfloat16
    dtype_for_none: str | None


@dataclass(frozen=True)
class QuantizerVerdict:
    """The case that matches a target, with what it was run on."""

    method: str
    release: str  # the target's release (its stored stand-in)
    executed_as: str  # the release run for this quantizer code (identical files)
    quantizer: str | None  # transformers/quantizers/quantizer_*.py
    case: QuantizerCase
    cases: tuple[QuantizerCase, ...]  # every case of this method in this release (for the fix)
    installed: bool = False  # read from the installed package (newer than the table)

    def cite(self) -> str:
        quantizer = (self.quantizer or "").removeprefix("transformers/")
        same = f" (same quantizer code as {self.release})" if self.executed_as != self.release else ""
        where = "run here from the installed package" if self.installed else f"executed: data/{TABLE}"
        raised = f", raised at {self.case.raised_at.removeprefix('transformers/')}" if self.case.raised_at else ""
        return f"transformers {self.executed_as} {quantizer}{same}{raised}; {where}"

    def installs_that_load(self) -> list[tuple[str, ...]]:
        """The smallest sets of absent packages whose install makes this device's case load (accepted or
        dequantized): GPTQ in 4.57.6 takes gptqmodel or auto-gptq, in 5.25 only gptqmodel."""
        absent = set(self.case.absent)
        options = [tuple(sorted(absent - set(c.absent))) for c in self.cases
                   if c.device == self.case.device and set(c.absent) <= absent
                   and c.verdict in ("accepted", "dequantizes")]
        if not options:
            return []
        smallest = min(len(o) for o in options)
        return sorted({o for o in options if len(o) == smallest})


@dataclass(frozen=True)
class Unknown:
    """No executed answer for this release: newer than the table and not the installed one."""

    release: str
    why: str


def compact_case(row: dict[str, Any]) -> list[Any]:
    """A worker's row as one table line: [device, absent ('a+b' or '-'), verdict, detail, raised_at,
    dtype for bfloat16, dtype for none]."""
    detail, verdict = row.get("error"), row["verdict"]
    if detail:  # the worker's marker of a package it hid: the message is the one a machine without it prints
        detail = detail.replace(" (absent in this case)", "")
    if verdict == "refused" and detail and detail.startswith(_NOT_A_CHECK):
        verdict, detail = "undecided", f"not a check (a Python error under the harness): {detail}"
    if verdict == "dequantizes":
        detail = next((w for w in row.get("warnings", ()) if "dequantiz" in w.lower()),
                      "; ".join(row.get("warnings", ())) or None)
        if row["method"] == "compressed_tensors":  # whether the checkpoint counts as compressed (run_compressed,
            verdict = "undecided"  # dequantize) is the compressed-tensors library's answer, stubbed in the run
            detail = f"the compressed-tensors library decides (stubbed here): {detail}"
    dtype = row.get("dtype") or {}
    return [row["device"], "+".join(row["absent"]) or "-", verdict, detail, row.get("raised_at"),
            dtype.get("bfloat16"), dtype.get("none")]


def _case(line: list[Any], messages: list[str]) -> QuantizerCase:
    """A table line as a case (the committed table keeps each detail once, in `messages`)."""
    absent = tuple(line[1].split("+")) if line[1] != "-" else ()
    detail = messages[line[3]] if isinstance(line[3], int) else line[3]
    return QuantizerCase(line[0], absent, line[2], detail, line[4], line[5], line[6])


@lru_cache(maxsize=4)
def _table(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def table() -> dict[str, Any] | None:
    """The committed table (None where this data folder has none)."""
    path = data_dir() / TABLE
    return _table(path) if path.is_file() else None


def device_key(on_gpu: bool, cc: ComputeCapability | None, devices: list[str]) -> str | None:
    """The executed device standing for the target: 'cpu' without a GPU, else the largest executed compute
    capability at or below the GPU's (every threshold a stored quantizer compares against was executed, so this
    is exact); None when the capability is unknown or below every executed one."""
    if not on_gpu:
        return "cpu"
    if cc is None:
        return None
    below = [d for d in devices if d != "cpu" and ComputeCapability.parse(d).as_tuple <= cc.as_tuple]
    return max(below, key=lambda d: ComputeCapability.parse(d).as_tuple) if below else None


def _method_cases(method: str, version: str, *, cache: bool) -> tuple[str, str, str | None, list[Any], bool] | Unknown | None:
    """(release, executed_as, quantizer, case lines, installed) for `method` under `version`."""
    from advisor.knowledge.installed import installed, is_newer, quantizer_rows
    from advisor.knowledge.releases import load_release_constraints

    data = table()
    if data is None:
        return None
    release = load_release_constraints(cache=cache).stored_release(version)
    if release is not None and release in data["releases"]:
        entry = data["releases"][release]
        executed = data["executed"][entry["content"]]
        if "methods" not in executed:
            why = "it has no quantizers/ package (quantization was inline in modeling_utils)" \
                if executed.get("no_quantizers") else executed.get("error", "not executed")
            return Unknown(release, f"not executed for transformers {release}: {why}")
        block = executed["methods"].get(method)
        if block is None:
            return None
        return release, executed["release"], block["quantizer"], data["case_sets"][block["cases"]], False
    newest = max(data["releases"], key=Version)
    inst = installed()
    if inst is not None and is_newer(version, newest) and Version(inst.version) == Version(version):
        rows = quantizer_rows(inst, cache=cache)
        if rows is None:
            return Unknown(version, f"transformers {version}'s quantizers did not run here")
        mine = [r for r in rows if r["method"] == method]
        quantizer = next((r.get("quantizer") for r in mine if r.get("quantizer")), None)
        return version, version, quantizer, [compact_case(r) for r in mine], True
    return Unknown(version, f"unknown for transformers {version}: the executed table covers "
                            f"{min(data['releases'], key=Version)} to {newest} and {version} is not installed here")


def quantizer_verdict(method: str, transformers: str | None, *, on_gpu: bool, cc: ComputeCapability | None,
                      installed_packages: set[str], cache: bool = True) -> QuantizerVerdict | Unknown | None:
    """The executed case for this method, release and target; None where nothing can be said (no release, an
    unknown compute capability, a method the table does not run)."""
    if transformers is None:
        return None
    try:
        Version(transformers)
    except InvalidVersion:
        return None
    found = _method_cases(method, transformers, cache=cache)
    if found is None or isinstance(found, Unknown):
        return found
    release, executed_as, quantizer, lines, from_installed = found
    data = table() or {}
    devices = data.get("devices") or sorted({line[0] for line in lines})
    key = device_key(on_gpu, cc, devices)
    if key is None:
        return None
    packages = (data.get("methods") or {}).get(method, {}).get("packages", [])
    absent = tuple(p for p in packages if p not in installed_packages)
    cases = tuple(_case(line, data.get("messages", [])) for line in lines)
    case = next((c for c in cases if c.device == key and c.absent == absent), None)
    if case is None:
        return None
    return QuantizerVerdict(method, release, executed_as, quantizer, case, cases, from_installed)
