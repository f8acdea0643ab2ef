"""The estimate's tables (issue 27): data/memory_formulas.json, the shipped models' exact memory formulas
(scripts/precompute_memory.py, per transformers release; their traces in memory_formulas_runs.json, those of
bitsandbytes formulas only in memory_formulas_runs_quantized.json),
memory_scaling.json, how those scale to the models' relatives (its exponents in memory_scaling_runs.json), and
data/closed_form_error.json, the closed form's measured error over the committed GPU rows
(benchmarks/memory_table.py --method estimated --bound-out).

All are optional: a missing or unreadable file means no shipped formula (the model is simulated or takes the
closed form), no relative scaled, and a closed form labelled without its bound."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from advisor.knowledge.loader import data_dir

__all__ = ["FORMULAS_FILE", "FORMULA_RUNS_FILE", "QUANTIZED_RUNS_FILE", "SCALING_FILE", "SCALING_RUNS_FILE",
           "closed_form_error", "memory_formula_runs", "memory_formulas", "memory_scaling", "memory_scaling_runs"]

FORMULAS_FILE = "memory_formulas.json"
FORMULA_RUNS_FILE = "memory_formulas_runs.json"  # the traces, apart: read only for a key the table holds (3 MB)
# the traces only bitsandbytes formulas name (4 MB): read only when one of those answers, so a machine without
# bitsandbytes (whose candidates are rejected before any figure) never parses them
QUANTIZED_RUNS_FILE = "memory_formulas_runs_quantized.json"
SCALING_FILE = "memory_scaling.json"  # how those scale to relatives (scripts/precompute_memory_scaling.py)
SCALING_RUNS_FILE = "memory_scaling_runs.json"  # the exponents, apart: read only when an entry answers (4 MB)


def _read(name: str) -> dict[str, Any]:
    try:
        data = json.loads((data_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@cache
def memory_formulas() -> dict[str, Any]:
    """{"simulator": stamp, "releases": {version: {key hash: [formula naming its runs, ...]}}}, or {}."""
    return _read(FORMULAS_FILE)


@cache
def memory_formula_runs(quantized: bool = False) -> dict[str, Any]:
    """{"runs": {name: run}}: the traces the formulas name, each stored once (scripts/precompute_memory.py);
    `quantized`: those only quantized formulas name."""
    return _read(QUANTIZED_RUNS_FILE if quantized else FORMULA_RUNS_FILE)


@cache
def memory_scaling() -> dict[str, Any]:
    """{"simulator": stamp, "releases": {version: [entry, ...]}} (advisor.estimate.formula_scaling), or {}."""
    return _read(SCALING_FILE)


@cache
def memory_scaling_runs() -> dict[str, Any]:
    """{"simulator": stamp, "runs": {name: {"n": numbers, "x": {index: exponents}}}}: what the entries name."""
    return _read(SCALING_RUNS_FILE)


@cache
def closed_form_error() -> dict[str, float] | None:
    """{"rows", "low", "high"} (fractions), or None."""
    try:
        data = json.loads((data_dir() / "closed_form_error.json").read_text(encoding="utf-8"))
        return {"rows": int(data["rows"]), "low": float(data["low"]), "high": float(data["high"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
