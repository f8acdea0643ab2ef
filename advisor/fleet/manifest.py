"""The deployment manifest: every model a team ships x every machine it ships to, checked in one run.

A manifest is YAML or TOML (schema: `Manifest` below, documented in docs/manifest.md). A bad manifest is
bad input (exit 2) and its error names the file, the line and the field, so the loader keeps the line of
every key: PyYAML's node marks for YAML; for TOML, whose standard parser keeps no positions, the line of
the key found by scanning the text along the field's path. A manifest can never enable remote code: a
`trust_remote_code` key anywhere in it is refused before anything else is read.

Issue 25: a manifest comes from the repository under test, so it is read like a config (`advisor.io.read_input`: a
regular file only, at most MANIFEST_MAX_BYTES, strict UTF-8), YAML is composed by a loader that bounds nesting
and counts every value an alias expands to (an alias bomb is refused, not expanded), the parsed tree may nest
at most `inputs.MAX_DEPTH` levels, the line index of a TOML file is built in one pass (scanning the text once
per key was quadratic: a 367 KiB file of escaped keys ran for minutes), and a manifest may ask for at most
MAX_PAIRS model x target pairs.
"""

from __future__ import annotations

import bisect
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from advisor.errors import AdvisorError, InputFileError, ManifestError, UsageError
from advisor.estimate.memory import MemoryEstimate
from advisor.facts import SCHEMA_VERSION, Environment
from advisor.findings import Finding, Severity
from advisor.io.read_input import MAX_DEPTH, check_tree, read_text_file
from advisor.plan.options import FromPretrained

__all__ = [
    "MANIFEST_MAX_BYTES",
    "MAX_PAIRS",
    "MAX_VALUES",
    "CheckSuite",
    "LoadedManifest",
    "Manifest",
    "ModelEntry",
    "PairResult",
    "TargetEntry",
    "Workload",
    "load_manifest",
    "run_manifest",
    "suite_from_check",
]

Loc = tuple[str | int, ...]

MANIFEST_MAX_BYTES = 1024 * 1024  # a thousand models and targets take under 100 KiB
MAX_VALUES = 200_000  # scalars, lists and mappings, every alias counted each time it is used
MAX_PAIRS = 10_000  # model x target pairs one run checks (each is a plan: ~0.1 s)


# ------------------------------------------------------------------------------------ schema


class ModelEntry(BaseModel):
    """One model to ship: what it is, and how it will be loaded (or `recommend` to let the advisor choose)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="a folder or config.json (relative to the manifest), a hub id "
                       "in the local HF cache, or a shipped model id")
    from_pretrained: FromPretrained | Literal["recommend"] = Field(
        "recommend", description='the kwargs you deploy with, or "recommend" to let the advisor choose')

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data


class TargetEntry(BaseModel):
    """One machine: a snapshot from `advisor probe -o`, GPUs from the shipped table, or a CPU-only host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(None, description="label in reports (default: file stem or GPU names)")
    env: str | None = Field(None, description="snapshot JSON written by `advisor probe -o`, relative to the manifest")
    gpu: list[str] | None = Field(None, description="GPU names from the shipped table; repeat a name for several cards")
    cpu: bool = Field(False, description="a machine without a GPU")
    assume: list[str] = Field(default_factory=list, description="DIST==VERSION treated as installed (e.g. for --gpu)")
    without: list[str] = Field(default_factory=list, description="distributions treated as absent")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"env": data} if data.endswith(".json") else {"gpu": [data]}
        if isinstance(data, dict) and isinstance(data.get("gpu"), str):
            return {**data, "gpu": [data["gpu"]]}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> TargetEntry:
        kinds = sum((self.env is not None, bool(self.gpu), self.cpu))
        if kinds != 1:
            raise ValueError("give exactly one of env (a snapshot file), gpu (GPU names) or cpu: true")
        return self

    def label(self) -> str:
        if self.name:
            return self.name
        if self.env is not None:
            return Path(self.env).stem
        return " + ".join(self.gpu or []) or "CPU"


class Workload(BaseModel):
    """What the models serve: batch size and sequence length (the KV cache and activations scale with both)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch: int = Field(1, ge=1, description="sequences served at once")
    seq_len: int | None = Field(None, ge=1, description="default: min(4096, the model's max positions)")


class Manifest(BaseModel):
    """models x targets, checked under one workload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[ModelEntry] = Field(min_length=1, description="models to ship (entries or bare names)")
    targets: list[TargetEntry] = Field(min_length=1, description="machines to ship to (entries, GPU names or .json paths)")
    workload: Workload = Field(default_factory=Workload, description="batch and seq_len every pair is checked under")


class LoadedManifest(BaseModel):
    """A validated manifest with where it came from and the line of every field (for errors and annotations)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    manifest: Manifest
    lines: dict[str, int]

    def line_of(self, loc: Loc) -> int | None:
        return _nearest_line(self.lines, loc)


# ------------------------------------------------------------------------------------ loading


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _nearest_line(lines: Mapping[str, int], loc: Loc) -> int | None:
    """The line of `loc`, or of its nearest parent that has one."""
    for n in range(len(loc), -1, -1):
        line = lines.get(_dotted(loc[:n]))
        if line is not None:
            return line
    return None


class _Bounded(Exception):
    """A manifest past a structural limit, found while composing (line, problem)."""

    def __init__(self, line: int | None, problem: str) -> None:
        self.line, self.problem = line, problem
        super().__init__(problem)


def _bounded_loader(text: str) -> Any:
    """A SafeLoader that refuses nesting deeper than MAX_DEPTH while it composes (before Python's own limit)."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise _Bounded(mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; not a manifest")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader(text)


def _expanded_size(root: Any) -> int:
    """How many values `root` stands for with every alias expanded, counted without expanding (each node once)."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            sizes[key] = min(MAX_VALUES + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _Bounded(node.start_mark.line + 1, "an alias refers to a value that contains it; not a manifest")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _yaml_data(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    import yaml

    loader = _bounded_loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_VALUES:
            raise _Bounded(None, f"more than {MAX_VALUES:,} values once its aliases are expanded; not a manifest")
        data = loader.construct_document(node) if node is not None else None
    except _Bounded as exc:
        raise ManifestError(path, exc.line, "", exc.problem) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ManifestError(path, mark.line + 1 if mark else None, "", f"not valid YAML ({exc.problem})") from None
    except yaml.YAMLError as exc:
        raise ManifestError(path, None, "", f"not valid YAML ({exc})") from None
    except RecursionError:
        raise ManifestError(path, None, "", f"nested more than {MAX_DEPTH} levels deep; not a manifest") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _walk_yaml(path, node, (), lines)
    return data, lines


def _walk_yaml(path: Path, node: Any, loc: Loc, lines: dict[str, int]) -> None:
    import yaml

    lines.setdefault(_dotted(loc), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise ManifestError(path, key.start_mark.line + 1, _dotted((*loc, name)), "duplicate key")
            seen.add(name)
            lines[_dotted((*loc, name))] = key.start_mark.line + 1
            _walk_yaml(path, value, (*loc, name), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(path, item, (*loc, index), lines)


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:
        raise UsageError("reading a TOML manifest on Python 3.10 needs tomli: pip install tomli") from None
    return tomli


def _toml_data(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    toml = _toml_module()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise ManifestError(path, int(found.group(1)) if found else None, "", f"not valid TOML ({exc})") from None
    except RecursionError:  # arrays or inline tables nested past Python's stack
        raise ManifestError(path, None, "", f"nested more than {MAX_DEPTH} levels deep; not a manifest") from None
    _check_shape(path, data)
    lines: dict[str, int] = {}
    _walk_toml(_TomlIndex(text.splitlines()), data, (), 0, lines)
    return data, lines


# A key on a line: bare, or quoted without escapes, after a line start or a separator, before `=`, `]` or `.`.
_TOML_KEY = re.compile(r"""(?<![^\s{,.\[])(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))\s*(?=[=\].])""")
_TOML_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*(.*?)\s*\]\]")


class _TomlIndex:
    """Where each key and `[[header]]` appears, read in one pass over the lines (TOML parsers keep no marks)."""

    def __init__(self, text: list[str]) -> None:
        self.keys: dict[str, list[int]] = {}
        self.headers: dict[str, list[int]] = {}
        for n, line in enumerate(text):
            header = _TOML_ARRAY_HEADER.match(line)
            if header:
                self.headers.setdefault(header.group(1), []).append(n)
            for match in _TOML_KEY.finditer(line.split("#")[0]):
                name = next(g for g in match.groups() if g is not None)
                self.keys.setdefault(name, []).append(n)

    def key_line(self, key: str, start: int) -> int | None:
        """The first line at or after `start` that names `key`."""
        found = self.keys.get(key, [])
        at = bisect.bisect_left(found, start)
        return found[at] if at < len(found) else None

    def header_lines(self, dotted: str, start: int) -> list[int]:
        found = self.headers.get(dotted, [])
        return found[bisect.bisect_left(found, start):]


def _walk_toml(index: _TomlIndex, value: Any, loc: Loc, start: int, lines: dict[str, int]) -> None:
    """Record the line of each key: the first line naming it at or after its parent's line."""
    if isinstance(value, dict):
        for key, item in value.items():
            line = index.key_line(str(key), start)
            if line is None:
                continue
            lines[_dotted((*loc, key))] = line + 1
            _walk_toml(index, item, (*loc, key), line, lines)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        hits = index.header_lines(".".join(str(p) for p in loc if isinstance(p, str)), start)
        for i, item in enumerate(value):
            at = hits[i] if i < len(hits) else start
            lines[_dotted((*loc, i))] = at + 1
            _walk_toml(index, item, (*loc, i), at, lines)


def _check_shape(path: Path, data: Any) -> None:
    """No nesting past MAX_DEPTH and no NaN or infinity (checked iteratively, before any recursive walk)."""
    try:
        check_tree(data, what="manifest", path=path)
    except InputFileError as exc:
        raise ManifestError(path, None, "", exc.problem) from None


def _check_pairs(path: Path, data: dict[str, Any], lines: Mapping[str, int]) -> None:
    """Refuse a manifest that asks for more pairs than one run checks, before anything is resolved."""
    models, targets = data.get("models"), data.get("targets")
    if isinstance(models, list) and isinstance(targets, list) and len(models) * len(targets) > MAX_PAIRS:
        raise ManifestError(path, _nearest_line(lines, ("models",)), "models",
                            f"{len(models):,} models x {len(targets):,} targets is {len(models) * len(targets):,} "
                            f"pairs, more than the {MAX_PAIRS:,} one run checks; split it into several manifests")


def _refuse_remote_code(path: Path, data: Any, lines: Mapping[str, int], loc: Loc = ()) -> None:
    """A manifest must never enable custom code from a model repository, whatever the key's value."""
    if isinstance(data, dict):
        for key, value in data.items():
            if str(key).lower().replace("-", "_") == "trust_remote_code":
                where = (*loc, str(key))
                raise ManifestError(path, _nearest_line(lines, where), _dotted(where),
                                    "trust_remote_code is not allowed in a manifest (a manifest can never enable "
                                    "remote code); remove the key")
            _refuse_remote_code(path, value, lines, (*loc, str(key)))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            _refuse_remote_code(path, item, lines, (*loc, index))


def load_manifest(path: Path) -> LoadedManifest:
    """Read and validate a YAML (.yaml/.yml) or TOML (.toml) manifest; any problem is a ManifestError."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ManifestError(path, None, "", f"unknown file type {suffix!r}; name it .yaml, .yml or .toml")
    try:
        text = read_text_file(path, what="manifest", limit=MANIFEST_MAX_BYTES)
    except InputFileError as exc:
        raise ManifestError(path, None, "", exc.problem.replace("a JSON file", "a YAML or TOML file")) from None
    if suffix == ".toml":
        data, lines = _toml_data(path, text)
    else:
        data, lines = _yaml_data(path, text)
        _check_shape(path, data)
    if not isinstance(data, dict):
        raise ManifestError(path, 1, "", "the top level must be a mapping with models, targets and workload")
    _refuse_remote_code(path, data, lines)
    _check_pairs(path, data, lines)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        # A string where kwargs or "recommend" belong: the literal's message says what was meant.
        first = next((e for e in errors if e["type"] == "literal_error" and isinstance(e.get("input"), str)
                      and e["loc"][:3] == first["loc"][:3]), first)
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and ("[" in p or p in ("FromPretrained",
                                                                                              "function-after"))))
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        raise ManifestError(path, _nearest_line(lines, loc), _dotted(loc), msg) from None
    return LoadedManifest(path=path, manifest=manifest, lines=lines)


# ------------------------------------------------------------------------------------ results


class PairResult(BaseModel):
    """One model on one target: ok or not, the configuration judged, every failing rule with its fix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    target: str
    mode: Literal["check", "recommend"]
    ok: bool
    config: str | None = Field(None, description="label of the configuration checked or chosen")
    from_pretrained: dict[str, Any] | None = None
    failures: list[Finding] = Field(default_factory=list)
    warnings: list[Finding] = Field(default_factory=list)
    memory: MemoryEstimate | None = None
    line: int | None = Field(None, description="the manifest line of the model entry")
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.model} on {self.target}"


class CheckSuite(BaseModel):
    """Every pair checked; `ok` only when all of them are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    manifest: str | None = None
    workload: Workload = Field(default_factory=Workload)
    pairs: list[PairResult]


def suite_from_check(model: str, result: Any, *, batch: int = 1, seq_len: int | None = None) -> CheckSuite:
    """A single `advisor check` result as a one-pair suite, so the CI formats serve both."""
    pair = PairResult(model=model, target=result.target, mode="check", ok=result.ok, config=result.label,
                      failures=result.failures, warnings=result.warnings, memory=result.memory)
    return CheckSuite(ok=result.ok, workload=Workload(batch=batch, seq_len=seq_len), pairs=[pair])


def _recommend_pair(model: str, target: str, plan: Any) -> PairResult:
    if plan.ok:
        warnings = [f for f in plan.findings if f.severity is Severity.WARN]
        return PairResult(model=model, target=target, mode="recommend", ok=True, config=plan.chosen.label,
                          from_pretrained=plan.from_pretrained, warnings=warnings, memory=plan.memory)
    failures = [r.as_finding(f"{r.option}: {r.message}") for r in plan.rejected]
    return PairResult(model=model, target=target, mode="recommend", ok=False, failures=failures)


def _model_location(loaded: LoadedManifest, entry: ModelEntry) -> str:
    """Relative paths are relative to the manifest; hub ids and shipped names stay as written."""
    candidate = loaded.path.parent / entry.model
    return str(candidate) if not Path(entry.model).is_absolute() and candidate.exists() else entry.model


def _resolve(loaded: LoadedManifest, loc: Loc, fn: Callable[[], Any]) -> Any:
    """Run `fn`; a bad name in the manifest becomes a ManifestError at that entry's line."""
    try:
        return fn()
    except ManifestError:
        raise
    except AdvisorError as exc:
        if exc.exit_code != 2:
            raise
        raise ManifestError(loaded.path, loaded.line_of(loc), _dotted(loc), str(exc)) from None


def _environment(loaded: LoadedManifest, entry: TargetEntry) -> Environment:
    from advisor.api import target_environment

    env_file = None
    if entry.env is not None:
        env_file = Path(entry.env) if Path(entry.env).is_absolute() else loaded.path.parent / entry.env
    return target_environment(env=env_file, gpu=entry.gpu or None, cpu=entry.cpu, assume=entry.assume,
                              without=entry.without, import_checks=False)


# the command line's workload options, as a manifest spells them (issue 31: SEQ001 said "use --seq-len")
_MANIFEST_TERMS = (("--seq-len", "workload.seq_len"), ("--batch", "workload.batch"))


def _manifest_terms(text: str) -> str:
    for option, field in _MANIFEST_TERMS:
        text = text.replace(option, field)
    return text


def _in_manifest_terms(pair: PairResult) -> PairResult:
    """The pair's findings with their fixes in the manifest's own field names."""
    def reword(findings: list[Finding]) -> list[Finding]:
        return [f.model_copy(update={"message": _manifest_terms(f.message), "fix": _manifest_terms(f.fix)})
                for f in findings]

    return pair.model_copy(update={"failures": reword(pair.failures), "warnings": reword(pair.warnings)})


def run_manifest(loaded: LoadedManifest, *, trust_remote_code: bool = False, simulate: bool = False,
                 progress: Callable[[int, int, str], None] | None = None) -> CheckSuite:
    """Check every model x target pair; models and targets are resolved once each (`simulate`: --simulate)."""
    from advisor.api import check, recommend
    from advisor.model.resolve import resolve_model

    m = loaded.manifest
    targets = [
        (t.label(), _resolve(loaded, ("targets", i), lambda t=t: _environment(loaded, t)))  # type: ignore[misc]
        for i, t in enumerate(m.targets)
    ]
    specs = [
        _resolve(loaded, ("models", i, "model"),
                 lambda e=e: resolve_model(_model_location(loaded, e), trust_remote_code=trust_remote_code))  # type: ignore[misc]
        for i, e in enumerate(m.models)
    ]
    pairs: list[PairResult] = []
    total = len(specs) * len(targets)
    for i, (entry, spec) in enumerate(zip(m.models, specs)):
        line = loaded.line_of(("models", i))
        for label, env in targets:
            started = time.perf_counter()
            if entry.from_pretrained == "recommend":
                plan = recommend(spec, batch=m.workload.batch, seq_len=m.workload.seq_len, env=env, simulate=simulate)
                pair = _recommend_pair(entry.model, label, plan)
            else:
                kwargs = entry.from_pretrained.kwargs()
                result = _resolve(loaded, ("models", i, "from_pretrained"), lambda kw=kwargs, spec=spec, env=env: check(  # type: ignore[misc]
                    spec, config=kw, batch=m.workload.batch, seq_len=m.workload.seq_len, env=env, simulate=simulate))
                pair = PairResult(model=entry.model, target=label, mode="check", ok=result.ok, config=result.label,
                                  from_pretrained=kwargs, failures=result.failures, warnings=result.warnings,
                                  memory=result.memory)
            pair = _in_manifest_terms(pair)
            pairs.append(pair.model_copy(update={"line": line, "seconds": round(time.perf_counter() - started, 3)}))
            if progress is not None:
                progress(len(pairs), total, pair.name)
    return CheckSuite(ok=all(p.ok for p in pairs), manifest=str(loaded.path), workload=m.workload, pairs=pairs)


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of a manifest (docs/manifest.md embeds it; a test keeps the two in step)."""
    return Manifest.model_json_schema()
