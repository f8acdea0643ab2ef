"""Typed access to `data/release_constraints.json`: facts read from each transformers release's own files.

Why: the torch floor, the flash-attn / bitsandbytes / accelerate minimums, the `kernels` window, the flash
compute-capability gates, the accepted attn_implementation names and the from_pretrained kwargs all change
from release to release. `scripts/generate_release_constraints.py` reads them from each wheel and records
the release, file and line of every value; this module answers "what does release X say" for the rules.
A version stands for the stored release of its minor (only the latest patch of each minor is stored), else
the newest older one, as in `advisor.knowledge.history`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from advisor.knowledge.schema import VersionConstraint

__all__ = [
    "FactRun",
    "ReleaseConstraints",
    "load_release_constraints",
    "release_constraint_rows",
]

_FILE = "release_constraints.json"
FACTS = (
    "torch_floor", "torch_requirement", "sdpa_torch_min", "flex_torch_min", "flash_attn_min", "flash_cc_gates",
    "flash_devices", "kernels_window", "kernel_fallback", "accelerate_min", "bitsandbytes_min", "attn_names",
    "paged_prefix", "hub_kernel_pattern", "load_in_kwargs", "dtype_kwarg", "dtype_default", "right_padding",
    "fp8_hub_kernel", "fp8_kernel_version", "quantize_ops_call", "quantize_ops_base",
    "use_kernels_default", "hub_kernels_env", "kernels_required",
    "distributed_config", "tp_plan_kwarg", "tp_quant_fp8", "tp_quant_torchao",  # issue 30
    *(f"onthefly_{key}" for key in ("bitsandbytes_8bit", "bitsandbytes_4bit", "quanto", "hqq", "fp8", "fbgemm_fp8",
                                    "torchao")),
)


class FactRun(BaseModel):
    """One value held by consecutive stored releases, cited at the first of them."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    first: str = Field(alias="from")
    last: str = Field(alias="to")
    value: Any
    release: str
    file: str
    line: int | None
    lines: dict[str, int] | None = None

    def cite(self, key: str | None = None) -> str:
        """`transformers 5.21.1 utils/import_utils.py:199` (the line of `key` for per-name facts)."""
        line = self.lines.get(key, self.line) if (self.lines and key) else self.line
        where = f"{self.file}:{line}" if line is not None else f"{self.file} (absent)"
        return f"transformers {self.release} {where}"


class ReleaseConstraints(BaseModel):
    """The whole file, validated: every fact's runs cover the stored releases in order, without gaps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    description: str
    generated_by: str
    source: str
    releases: list[str]
    facts: dict[str, list[FactRun]]
    derived: str | None = None  # the last release, read from the installed package (not in the shipped file)
    # lookups memoised per instance (the rules ask the same few questions about a thousand times a plan)
    _stored: dict[str, str | None] = PrivateAttr(default_factory=dict)
    _at: dict[tuple[str, str], FactRun | None] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _covers(self) -> ReleaseConstraints:
        missing = [name for name in FACTS if name not in self.facts]
        if missing:
            raise ValueError(f"facts missing: {missing}")
        for name, fact_runs in self.facts.items():
            covered = []
            for run in fact_runs:
                start, end = self.releases.index(run.first), self.releases.index(run.last)
                if run.release != run.first:
                    raise ValueError(f"{name}: run {run.first}..{run.last} cites {run.release}, not its first release")
                covered.extend(self.releases[start : end + 1])
            if covered != self.releases:
                raise ValueError(f"{name}: runs do not cover the stored releases in order")
        return self

    def stored_release(self, version: str) -> str | None:
        """The stored release standing for `version` (None: older than every stored release, or not a version)."""
        if version not in self._stored:
            self._stored[version] = self._stored_release(version)
        return self._stored[version]

    def _stored_release(self, version: str) -> str | None:
        try:
            wanted = Version(version)
        except InvalidVersion:
            return None
        stored = [Version(r) for r in self.releases]
        newest = stored[-1] if stored else None
        if newest is None or (wanted.major, wanted.minor) > (newest.major, newest.minor):
            return None  # newer than every stored release: its facts are unknown, never the newest one's
        same = [i for i, v in enumerate(stored) if (v.major, v.minor) == (wanted.major, wanted.minor)]
        older = [i for i, v in enumerate(stored) if v <= wanted]
        index = same[-1] if same else older[-1] if older else None
        return None if index is None else self.releases[index]

    def with_release(self, version: str, facts: dict[str, dict[str, Any]]) -> ReleaseConstraints:
        """These facts plus one newer release's (`{"value", "file", "line"}` per fact, as `release_reader` reads
        them): a run whose value holds on is extended, else a new run cites the new release."""
        extended: dict[str, list[FactRun]] = {}
        for name, fact_runs in self.facts.items():
            item = facts.get(name)
            if item is None:
                raise ValueError(f"transformers {version}: fact {name} was not read")
            last = fact_runs[-1]
            if last.value == item["value"] and last.file == item["file"]:
                lines = {**last.lines, version: item["line"]} if last.lines and item["line"] is not None else None
                update = {"last": version, **({"lines": lines} if lines else {})}
                extended[name] = [*fact_runs[:-1], last.model_copy(update=update)]
            else:
                extended[name] = [*fact_runs, FactRun.model_validate({
                    "from": version, "to": version, "value": item["value"], "release": version,
                    "file": item["file"], "line": item["line"], "lines": item.get("lines")})]
        return self.model_copy(update={"releases": [*self.releases, version], "facts": extended, "derived": version})

    def source_of(self, version: str | None) -> str | None:
        """Where the facts about `version` come from, when not from the shipped tables (the one line a report
        prints about it), else None."""
        if version is None:
            return None
        shipped = self.releases[:-1] if self.derived else self.releases
        if self.derived is not None and self.stored_release(version) == self.derived:
            return (f"transformers {version}: read from the installed package (newer than the shipped tables, "
                    f"{shipped[-1]})")
        if self.stored_release(version) is None and _newer(version, shipped[-1]):
            return (f"transformers {version}: newer than the shipped tables ({shipped[-1]}) and not installed "
                    f"here: facts about it are unknown")
        return None

    def at(self, fact: str, version: str | None) -> FactRun | None:
        """The run of `fact` covering the release that stands for `version`."""
        release = self.stored_release(version) if version else None
        if release is None:
            return None
        key = (fact, release)
        if key not in self._at:
            position = self.releases.index(release)
            self._at[key] = next((run for run in self.facts[fact]
                                  if self.releases.index(run.first) <= position <= self.releases.index(run.last)),
                                 None)
        return self._at[key]

    def first_where(self, fact: str, predicate: Any) -> FactRun | None:
        """The first run whose value satisfies `predicate` (e.g. the first release accepting a name)."""
        return next((run for run in self.facts[fact] if predicate(run.value)), None)

    def first_accepting(self, impl: str) -> FactRun | None:
        """The first stored release whose modeling_utils accepts `impl` as an attn_implementation."""
        for release in self.releases:
            accepted, run = self.accepts(impl, release)
            if accepted and run is not None:
                return run.model_copy(update={"first": release, "release": release}) if run.first != release else run
        return None

    def is_attn_name(self, name: str) -> bool:
        """Whether some stored release accepts `name` (a plain name, `paged|<name>` or a Hub kernel)."""
        return any(self.accepts(name, release)[0] for release in self.releases[::-1])

    def accepts(self, name: str, version: str | None) -> tuple[bool, FactRun | None]:
        """Whether that release accepts `name` as attn_implementation: a registered name, `paged|<name>` where
        the release strips the prefix, or an `org/repo[:function]` Hub kernel matching its pattern."""
        names = self.at("attn_names", version)
        if names is None:
            return True, None  # release unknown: nothing to say
        if name in names.value:
            return True, names
        if name.startswith("paged|"):
            paged = self.at("paged_prefix", version)
            base = name.removeprefix("paged|")
            if paged is not None and paged.value and base in names.value:
                return True, paged
            return False, paged or names
        pattern = self.at("hub_kernel_pattern", version)
        if "/" in name:
            if pattern is not None and pattern.value and re.search(pattern.value, name):
                return True, pattern
            return False, pattern or names
        return False, names


def default_path() -> Path:
    from advisor.knowledge.loader import data_dir

    return data_dir() / _FILE


@lru_cache(maxsize=8)
def _load(path: Path, cache: bool) -> ReleaseConstraints:
    stored = ReleaseConstraints.model_validate_json(path.read_bytes())
    from advisor.knowledge.installed import derived_facts, installed, is_newer

    here = installed()
    if here is None or not is_newer(here.version, stored.releases[-1]):
        return stored
    # NOTE: an installed release newer than the table is read from its own files (issue 24), never answered
    # with the newest stored release's facts
    return stored.with_release(here.version, derived_facts(here, cache=cache))


def load_release_constraints(path: str | Path | None = None, *, cache: bool = True) -> ReleaseConstraints:
    """The stored facts, plus those of an installed release newer than them (read once, then cached; `cache=False`:
    --no-cache, the installed release read without the user cache)."""
    return _load(Path(path).resolve() if path is not None else default_path(), cache)


def _newer(version: str, than: str) -> bool:
    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return False


def _minor(version: str) -> str:
    v = Version(version)
    return f"{v.major}.{v.minor}"


def _when(rc: ReleaseConstraints, run: FactRun) -> str:
    """The transformers versions a run stands for: from its first minor up to the next run's first minor, and
    the last run up to the minor after the newest known release (a newer release's window is unknown)."""
    position = rc.releases.index(run.last)
    low = f">={_minor(run.first)}"
    if position + 1 < len(rc.releases):
        return f"{low},<{_minor(rc.releases[position + 1])}"
    last = Version(run.last)
    return f"{low},<{last.major}.{last.minor + 1}"


def release_constraint_rows(rc: ReleaseConstraints) -> list[VersionConstraint]:
    """The library minimums of each release as `VersionConstraint` rows (what `libraries.json` once hand-typed)."""
    rows: list[VersionConstraint] = []

    def add(code: str, library: str, specifier: str, run: FactRun, message: str, fix: str) -> None:
        when = _when(rc, run)
        rows.append(VersionConstraint(
            code=f"{code}@{run.first}", library=library, specifier=specifier, when_library="transformers",
            when_specifier=when, message=message, fix=fix, source=run.cite(), verified=False,  # read as AST, not run
        ))

    for run in rc.facts["torch_floor"]:
        if run.value:
            add("torch-floor", "torch", f">={run.value}", run,
                f"transformers {_span(run)} disables itself below torch {run.value} (is_torch_available is False): "
                "nothing would load", f"pip install -U 'torch>={run.value}'")
    for run in rc.facts["flash_attn_min"]:
        if run.value:
            add("flash-attn-min", "flash-attn", f">={run.value}", run,
                f"transformers {_span(run)} needs flash-attn >= {run.value} for flash_attention_2",
                "pip install -U flash-attn --no-build-isolation")
    for run in rc.facts["bitsandbytes_min"]:
        if run.value:
            add("bitsandbytes-min", "bitsandbytes", f">={run.value}", run,
                f"transformers {_span(run)} needs bitsandbytes >= {run.value}",
                f"pip install -U 'bitsandbytes>={run.value}'")
    for run in rc.facts["accelerate_min"]:
        if run.value:
            add("accelerate-min", "accelerate", f">={run.value}", run,
                f"transformers {_span(run)} needs accelerate >= {run.value} for device_map and bitsandbytes loading",
                f"pip install -U 'accelerate>={run.value}'")
    for run in rc.facts["kernels_window"]:
        window = run.value or {}
        if window.get("min"):
            spec = f">={window['min']}" + (f",<{window['max']}" if window.get("max") else "")
            add("kernels-window", "kernels", spec, run,
                f"transformers {_span(run)} only uses `kernels` {spec}; outside it, its Hub-kernel fallback is off",
                f"pip install 'kernels{spec}'")
    return rows


def _span(run: FactRun) -> str:
    return run.first if run.first == run.last else f"{run.first}-{run.last}"
