"""Where exact memory formulas (advisor.estimate.trace_formula) are kept and found: the shipped models' in
data/memory_formulas.json (scripts/precompute_memory.py, per transformers release), every other config's in the
analysis cache after its first simulation. A lookup imports neither torch nor transformers (issue 27).

A formula is stored with the simulator's stamp it was proved under; a different simulator never uses it (and
with its layout's FORMAT: a replay that reads formulas differently bumps it). A fit runs after the command that
simulated has answered (`record` queues it; `fit_later` starts a detached child, advisor.estimate.fit_worker).
A config whose formula was refused (a loop over tokens: Mamba's and Jamba's slow paths) is marked, so later runs
simulate it rather than fall back to the closed form.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping
from typing import Any

from advisor.estimate.trace_formula import FORMAT, Formula, Refused, applies, evaluate, region
from advisor import env as envvars
from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version
from advisor.knowledge.memory_tables import FORMULAS_FILE as FILE
from advisor.knowledge.memory_tables import memory_formula_runs
from advisor.knowledge.memory_tables import memory_formulas as shipped_table

__all__ = ["FILE", "KIND", "fit_later", "fit_one", "fit_pending", "formula_key", "lookup", "record", "refused",
           "relative", "shipped_current", "shipped_formula", "shipped_formulas", "shipped_table"]

KIND = "memory-formula"
MAX_KEPT = 12  # formulas per config variant (regions) in one cache entry, the newest kept
MAX_PENDING = 8  # fits queued by one command (one per simulated candidate), the newest kept
_PENDING: list[dict[str, Any]] = []
_log = logging.getLogger(__name__)


def formula_key(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a formula depends on: the simulation's inputs less the shape, its target as the simulator tells targets
    apart (`simulation_target`: a formula fitted on an A100 serves an L4 and an A10, one for flex serves FA2)."""
    from advisor.estimate.simulate import simulation_target

    shape = ("batch", "prompt_len", "seq_len")
    target = simulation_target(attn=inputs["attn"], device=inputs["device"], capability=inputs["capability"],
                               sdpa_backends=inputs["sdpa_backends"])
    return {"config": dict(config), **{k: v for k, v in inputs.items() if k not in shape}, **target}


def shipped_current(stamp: str) -> bool:
    """Whether data/memory_formulas.json was made by this simulator: where it was not (its code changed since),
    a shipped model is simulated (exact), never served a formula proved under other code. A release the file
    lacks keeps the shipped fast path (issue 14: no import of transformers), its figure the closed form's."""
    return shipped_table().get("simulator") == stamp


def _entry(key: Mapping[str, Any], stamp: str, use: bool = True) -> dict[str, Any]:
    hit = analysis_cache.get(KIND, key, transformers=installed_version(), extra=stamp, use=use)
    return hit if isinstance(hit, dict) else {}


def _shipped(digest: str, stamp: str) -> list[Any]:
    """The shipped formulas of this key hash with their runs in place (none where the file is stale)."""
    table = shipped_table()
    if table.get("simulator") != stamp:
        return []
    found = table.get("releases", {}).get(installed_version() or "", {}).get(digest, [])
    if not found:
        return []
    return [_resolved(raw) for raw in found]


def _candidates(key: Mapping[str, Any], stamp: str, use: bool) -> list[Any]:
    return [*_shipped(analysis_cache.content_hash(key), stamp), *_entry(key, stamp, use).get("formulas", [])]


def _resolved(raw: Any) -> Any:
    """A shipped formula with its runs in place: the files keep each distinct run once, named by its hash
    (scripts/precompute_memory.py), the runs only quantized formulas name apart (read on their first use); a name
    in neither leaves it unusable (a miss)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), list):
        return raw

    def run(name: str) -> Any:
        found = memory_formula_runs().get("runs", {}).get(name)
        return found if found is not None else memory_formula_runs(quantized=True).get("runs", {}).get(name)

    return {**raw, "runs": [run(r) if isinstance(r, str) else r for r in raw["runs"]]}


def lookup(key: Mapping[str, Any], stamp: str, *, batch: int, prompt: int, seq_len: int, use_cache: bool = True
           ) -> Any | None:
    """The SimResult at this shape from a stored formula whose region holds it, or None (`use_cache=False`,
    --no-cache: the shipped formulas only)."""
    for raw in _candidates(key, stamp, use_cache):
        try:
            formula = Formula.model_validate(raw)
            if formula.format == FORMAT and applies(formula, key["config"], batch, prompt, seq_len):
                return evaluate(formula, batch, prompt, seq_len)
        except (ValueError, Refused, IndexError, KeyError, ZeroDivisionError) as exc:  # a foreign entry: a miss
            _log.debug("memory formula unusable: %s", exc)
    return None


def relative(key: Mapping[str, Any], stamp: str, *, batch: int, prompt: int, seq_len: int, keep: bool = False
             ) -> Any | None:
    """The SimResult at this shape from a shipped formula scaled to this relative of a shipped model
    (advisor.estimate.formula_scaling), or None; `keep`: the scaled formula is kept in the analysis cache as
    this config's own, so its other shapes need neither table again."""
    from advisor.estimate import formula_scaling

    formula = formula_scaling.lookup(key, stamp, installed_version(), functools.partial(shipped_formula, stamp),
                                     batch=batch, prompt=prompt, seq_len=seq_len)
    if formula is None:
        return None
    if keep:
        entry = _entry(key, stamp)
        entry["formulas"] = [*entry.get("formulas", []), formula.model_dump(mode="json")][-MAX_KEPT:]
        analysis_cache.put(KIND, key, entry, transformers=installed_version(), extra=stamp)
    return evaluate(formula, batch, prompt, seq_len)


def shipped_formulas(stamp: str, digest: str) -> list[Formula]:
    """The shipped formulas of this key hash for the installed release (none where the file is stale)."""
    out = []
    for raw in _shipped(digest, stamp):
        try:
            formula = Formula.model_validate(raw)
        except ValueError:
            continue
        if formula.format == FORMAT:
            out.append(formula)
    return out


def shipped_formula(stamp: str, digest: str, where: Any) -> Formula | None:
    """The shipped formula of this key hash whose region is `where` (a Region's JSON)."""
    return next((f for f in shipped_formulas(stamp, digest) if f.region.model_dump(mode="json") == where), None)


def refused(key: Mapping[str, Any], stamp: str) -> bool:
    """Whether a fit was refused for this config variant: it simulates at every shape instead."""
    return bool(_entry(key, stamp).get("refused"))


def record(key: Mapping[str, Any], stamp: str, *, architecture: str | None, batch: int, prompt: int,
           seq_len: int, generative: bool) -> None:
    """Queue the fit of this shape's region. A fit is a few seconds of simulations: it runs after the answer is
    out (`fit_later`, from the CLI's entry point) or when asked (`fit_pending`), never on the critical path of the
    command that simulated (issue 27: a first run costs one simulation per candidate, no more)."""
    if region(key["config"], batch, prompt, seq_len, generative) is None:
        return  # no formula for this shape (1 new token): nothing to fit, nothing refused
    _PENDING.append({"key": dict(key), "stamp": stamp, "architecture": architecture, "batch": batch,
                     "prompt": prompt, "seq_len": seq_len, "generative": generative})
    del _PENDING[:-MAX_PENDING]


def fit_pending() -> list[Formula]:
    """Fit every queued region now and keep each formula (or mark its config refused); returns the formulas."""
    done = []
    while _PENDING:
        job = _PENDING.pop(0)
        formula = _fit_and_keep(job.pop("key"), job.pop("stamp"), **job)
        if formula is not None:
            done.append(formula)
    return done


def fit_later() -> bool:
    """Hand the queued fits to a detached child that outlives this command (at low priority), so the next
    command at a new shape of the same config finds its formula; False where nothing was started."""
    if _PENDING and envvars.read(envvars.FIT_INLINE):  # a caller that compares the cache after the command
        return bool(fit_pending())
    jobs = list(_PENDING)
    _PENDING.clear()
    if not jobs or not analysis_cache.enabled():
        return False
    from advisor.isolation.child import spawn_detached

    return spawn_detached("advisor.estimate.fit_worker", {"jobs": jobs})


def _fit_and_keep(key: Mapping[str, Any], stamp: str, *, architecture: str | None, batch: int, prompt: int,
                  seq_len: int, generative: bool) -> Formula | None:
    entry = _entry(key, stamp)
    if entry.get("refused") or any(_covers(raw, key, batch, prompt, seq_len) for raw in entry.get("formulas", [])):
        return None  # refused before, or fitted since this job was queued
    try:
        formula = fit_one(key, architecture=architecture, batch=batch, prompt=prompt, seq_len=seq_len,
                          generative=generative)
    except Refused as exc:
        _log.debug("no exact memory formula: %s", exc)
        entry["refused"] = str(exc)[:500]
        formula = None
    except Exception as exc:  # noqa: BLE001 - a class the recorder cannot run: simulate as before
        _log.debug("memory formula failed: %s: %s", type(exc).__name__, exc)
        return None
    if formula is not None:
        entry["formulas"] = [*entry.get("formulas", []), formula.model_dump(mode="json")][-MAX_KEPT:]
    analysis_cache.put(KIND, key, entry, transformers=installed_version(), extra=stamp)
    return formula


def _covers(raw: Any, key: Mapping[str, Any], batch: int, prompt: int, seq_len: int) -> bool:
    try:
        return applies(Formula.model_validate(raw), key["config"], batch, prompt, seq_len)
    except ValueError:
        return False


def fit_one(key: Mapping[str, Any], *, architecture: str | None, batch: int, prompt: int, seq_len: int,
            generative: bool) -> Formula:
    """`trace_formula.fit` for a formula key (raises Refused)."""
    from advisor.estimate.trace_formula import fit

    config = copy.deepcopy(dict(key["config"]))  # a config class may edit nested dicts
    return fit(config, architecture, dtype=key["dtype"], attn=key["attn"],
               quantization=key["quantization"], padded=key["padded"], device=key["device"],
               capability=key["capability"], sdpa_backends=key["sdpa_backends"], batch=batch, prompt=prompt,
               seq_len=seq_len, generative=generative)
