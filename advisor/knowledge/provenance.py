"""Which facts in `data/` describe runtime behaviour, and what each cites (issue 28: "every fact in data/ that
describes runtime behaviour cites a reproduction (what was run, on which wheel) or is marked unverified").

Why here: the rule is one check (`schema.provenance_problem`) over every table, so a new table or a row that lost
its citation fails `tests/unit/test_provenance.py` instead of reaching a finding unmarked. Hand-checked tables carry
the citation per row (`reproduction` or `verified: false` with `source`; their loaders validate it too). A
generated table is cited by its generator: the file's own `generated_by` line is the command, and this module
says whether that generator executes the release (a reproduction) or reads its files (`verified: false`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.knowledge.schema import provenance_problem

__all__ = ["NOT_RUNTIME", "OWNED_ELSEWHERE", "TABLES", "RuntimeRow", "audit", "runtime_rows"]

Row = Mapping[str, Any]


@dataclass(frozen=True)
class RuntimeRow:
    file: str  # relative to data/
    key: str
    provenance: Row  # the mapping `provenance_problem` judges: reproduction, or verified + source


def _executed(raw: Row, file: str, ran: str) -> dict[str, Any]:
    """A generated table whose generator executes the release: its `generated_by` is the command."""
    command = raw.get("generated_by") or raw.get("command") or ""
    return {"reproduction": {"command": command, "ran": ran, "output": f"data/{file}"}} if command else {}


def _read(source: str) -> dict[str, Any]:
    return {"verified": False, "source": source}


def _rows(key: str, field: str = "source") -> Callable[[str, Row], Iterator[RuntimeRow]]:
    """A hand-checked table: each row of `raw[key]` carries its own citation."""
    def walk(file: str, raw: Row) -> Iterator[RuntimeRow]:
        for index, row in enumerate(raw.get(key, [])):
            mapping = {**row, "source": json.dumps(row["sources"]) if row.get("sources") else ""} \
                if field == "sources" else row
            name = row.get("fact") or row.get("impl") or row.get("code") or row.get("backend") or row.get(
                "min_compute_capability") or row.get("gfx_arch") or row.get("model_type") or row.get("covers")
            yield RuntimeRow(file, f"{key}[{index}] {name} {row.get('constraint') or row.get('covers') or ''}".strip(),
                             mapping)
    return walk


def _capabilities(file: str, raw: Row) -> Iterator[RuntimeRow]:
    yield from _rows("nvidia")(file, raw)
    yield from _rows("amd")(file, raw)


# release_constraints.json facts a script executed (the rest is read as text and AST from each wheel)
_EXECUTED_RELEASE_FACTS = {
    "dtype_kwarg": {"command": "python scripts/check_dtype_kwarg.py OUT --wheels WHEELHOUSE "
                               "4.36.2 4.46.3 4.51.3 4.54.1 4.56.2 5.25.0",
                    "ran": "transformers 4.36.2, 4.46.3, 4.51.3, 4.56.2 and 5.25.0 (each release's wheel installed "
                           "apart; a tiny Llama loaded with dtype= and torch_dtype=; 4.54.1 did not import there), "
                           "torch 2.13.0+cpu",
                    "output": "docs/knowledge/dtype-kwarg.json"},
}


def _quant_methods(file: str, raw: Row) -> Iterator[RuntimeRow]:
    """A method row's runtime claims come from quantizer_acceptance.json's run (`executed`) or were read."""
    for row in raw.get("methods", []):
        executed = row.get("executed")
        yield RuntimeRow(file, f"methods {row['key']}", {"reproduction": {
            "command": "nice -n 19 python scripts/generate_quantizer_acceptance.py", "ran": executed,
            "output": "data/quantizer_acceptance.json"}} if executed else {"verified": row.get("verified"),
                                                                             "source": row.get("source", "")})


def _release_constraints(file: str, raw: Row) -> Iterator[RuntimeRow]:
    for fact, runs in raw.get("facts", {}).items():
        for run in runs:
            ran = _EXECUTED_RELEASE_FACTS.get(fact)
            yield RuntimeRow(file, f"{fact} {run['from']}..{run['to']}", {"reproduction": ran} if ran else _read(
                f"{raw.get('generated_by', '')}: {raw.get('source', '')}; transformers {run['release']} {run['file']}"
                f":{run.get('line')}"))


def _per_release_table(key: str, how: Callable[[Row, str], dict[str, Any]]) -> Callable[[str, Row], Iterator[RuntimeRow]]:
    """A generated table: one runtime row per entry of `raw[key]`, all cited by the generator."""
    def walk(file: str, raw: Row) -> Iterator[RuntimeRow]:
        provenance = how(raw, file)
        for name in raw.get(key, {}):
            yield RuntimeRow(file, f"{key} {name}", provenance)
    return walk


def _attention(raw: Row, file: str) -> dict[str, Any]:
    releases = raw.get("releases") or [raw.get("transformers")]
    return _executed(raw, file, f"transformers {releases[0]}..{releases[-1]}: every model type built on the meta "
                                f"device through the release's own attention check (data/acceptance/), torch "
                                f"{raw.get('environment', {}).get('torch', '2.13.0+cpu')}; a cell left undecided "
                                "there keeps the class flag")


def _measured_rows(file: str, raw: Row) -> Iterator[RuntimeRow]:
    """measurements/h100.json: each row names the run whose command measured it."""
    commands = {run["run"]: run["command"] for run in raw.get("runs", [])}
    for index, row in enumerate(raw.get("rows", [])):
        command = commands.get(row.get("run", ""), "")
        yield RuntimeRow(file, f"rows[{index}] {row.get('metric')}", {"reproduction": {
            "command": command, "ran": f"{row['key'].get('gpu')}, torch {row['key'].get('torch')}, transformers "
                                       f"{row['key'].get('transformers')}", "output": f"data/{file}"}} if command else {})


def _bench_rows(file: str, raw: Row) -> Iterator[RuntimeRow]:
    """measurements/quantization.json: each row's speed comes from committed bench reports (each holds its command)."""
    for row in raw.get("rows", []):
        sources = [s for s in row.get("sources", []) if s.startswith("docs/benchmarks/")]
        yield RuntimeRow(file, f"rows {row.get('quantization')}", {"reproduction": {
            "command": "advisor bench (the command inside each report)", "ran": raw.get("device", ""),
            "output": ", ".join(sources)}} if sources else {})


def _one(how: Callable[[Row, str], dict[str, Any]]) -> Callable[[str, Row], Iterator[RuntimeRow]]:
    def walk(file: str, raw: Row) -> Iterator[RuntimeRow]:
        yield RuntimeRow(file, "table", how(raw, file))
    return walk


def _flex_cpu(file: str, raw: Row) -> Iterator[RuntimeRow]:
    for index, run in enumerate(raw.get("runs", [])):
        yield RuntimeRow(file, f"runs[{index}] {run.get('mode')} {run.get('dtype')}", _executed(
            raw, file, f"torch {raw.get('torch')}, transformers {raw.get('transformers')}, {raw.get('machine')}"))


# data/ path (glob) -> the runtime-fact rows it holds, each with its citation
TABLES: dict[str, Callable[[str, Row], Iterator[RuntimeRow]]] = {
    "attention_impls.json": _rows("rows"),
    "libraries.json": _rows("rows"),
    "capabilities.json": _capabilities,
    "bitsandbytes.json": _rows("rows", field="sources"),
    "sdpa_backends.json": _rows("rows"),
    "softcap.json": _rows("rows"),
    "model_notes.json": _rows("fp16_overflow"),
    "release_constraints.json": _release_constraints,
    "attention_history.json": _per_release_table("architectures", _attention),
    "attention/transformers-*.json": lambda file, raw: (
        RuntimeRow(file, f"architectures {a['model_type']}", _attention(raw, file)) for a in raw["architectures"]),
    "hub_kernels.json": _per_release_table("read", lambda raw, file: _executed(
        raw, file, "each release installed apart with its kernels extra; the mapping its integrations/hub_kernels.py "
                   "executes, the shipped models' kernel layers built on the meta device")),
    "quantizable_share.json": _per_release_table("model_types", lambda raw, file: _executed(
        raw, file, f"transformers {raw['releases'][0]}..{raw['releases'][-1]}: every model type built on the meta "
                   "device under the release's own replacement rule")),
    "model_analysis.json": _per_release_table("models", lambda raw, file: _executed(
        raw, file, "the shipped models built on the meta device under each stored release")),
    "tp_plans.json": _per_release_table("model_types", lambda raw, file: _read(
        f"{raw.get('generated_by', '')}: {raw.get('source', '')}")),
    "position_kinds.json": _per_release_table("rows", lambda raw, file: _read(
        f"python scripts/generate_position_kinds.py: transformers {raw.get('transformers')} modeling files read as "
        "text (the deciding line per type)")),
    "flex_cpu/torch-*.json": _flex_cpu,
    "tp_fixed_cost.json": _one(lambda raw, file: _executed(
        raw, file, f"torch {raw.get('torch')}, transformers {raw.get('transformers')}, {raw.get('machine')}")),
    "closed_form_error.json": _one(lambda raw, file: _executed(
        raw, file, "the committed GPU rows of data/measurements/h100.json against the closed form")),
    "measurements/h100.json": _measured_rows,
    "quant_methods.json": _quant_methods,
    "quantizer_acceptance.json": _per_release_table("releases", lambda raw, file: _executed(
        raw, file, "each release's quantizers (get_hf_quantizer / validate_environment / update_dtype) run in a "
                   "child under each target condition, the conditions faked, the code the release's")),
    "measurements/quantization.json": _bench_rows,
}

# tables that state no runtime behaviour: what they hold instead
NOT_RUNTIME = {
    "gpus.json": "a catalogue of cards (names, memory, compute capability, interconnect): specification, not behaviour",
    "models/*.json": "the shipped models' config.json as published on the Hub",
}

# tables the issue 28 audit leaves to others: generated with their own reproduction, or owned by another engineer
OWNED_ELSEWHERE = {
    "memory_formulas.json": "generated by scripts/precompute_memory.py (the simulator's traces, proved byte-equal)",
    "memory_formulas_runs.json": "generated by scripts/precompute_memory.py (the traces its formulas name)",
    "memory_formulas_runs_quantized.json": "generated by scripts/precompute_memory.py (the traces only its "
                                           "bitsandbytes formulas name)",
    "memory_scaling.json": "generated by scripts/precompute_memory_scaling.py (refits of those traces, checked byte-equal)",
    "memory_scaling_runs.json": "generated by scripts/precompute_memory_scaling.py (the exponents its entries name)",
    "acceptance/transformers-*.json": "generated by scripts/generate_acceptance.py: each file is its reproduction",
}


def runtime_rows(root: Path) -> Iterator[RuntimeRow]:
    """Every runtime-fact row of the tables under `root`, with the mapping that cites it."""
    for pattern, walk in TABLES.items():
        for path in sorted(root.glob(pattern)):
            file = path.relative_to(root).as_posix()
            yield from walk(file, json.loads(path.read_text(encoding="utf-8")))


def audit(root: Path) -> list[str]:
    """`file key: problem` for each runtime-fact row that cites neither a run nor `verified: false`, and for each
    JSON file under `root` that no list above classifies."""
    problems = [f"{row.file} {row.key}: {problem}" for row in runtime_rows(root)
                if (problem := provenance_problem(row.provenance))]
    known = [*TABLES, *NOT_RUNTIME, *OWNED_ELSEWHERE]
    for path in sorted(root.rglob("*.json")):
        if not any(path.relative_to(root).match(pattern) for pattern in known):
            problems.append(f"{path.relative_to(root).as_posix()}: not classified (add it to a list in "
                            "advisor/knowledge/provenance.py)")
    return problems
