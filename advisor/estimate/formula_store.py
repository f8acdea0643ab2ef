"""Where exact memory formulas (advisor.estimate.trace_formula) are kept and found: the shipped models' in
data/memory_formulas.json (scripts/precompute_memory.py, per transformers release), every other config's in the
analysis cache after its first simulation. A lookup imports neither torch nor transformers (issue 27).

A formula is stored with the simulator's stamp it was proved under; a different simulator never uses it. A config
whose formula was refused (a loop over tokens: Mamba's and Jamba's slow paths) is marked, so later runs simulate it
rather than fall back to the closed form.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from advisor.estimate.trace_formula import Formula, Refused, applies, evaluate
from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version
from advisor.knowledge.memory_tables import FORMULAS_FILE as FILE
from advisor.knowledge.memory_tables import memory_formulas as shipped_table

__all__ = ["FILE", "KIND", "fit_one", "formula_key", "lookup", "record", "refused", "shipped_table"]

KIND = "memory-formula"
MAX_KEPT = 12  # formulas per config variant (regions) in one cache entry, the newest kept
_log = logging.getLogger(__name__)


def formula_key(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a formula depends on: the simulation's inputs less the shape."""
    shape = ("batch", "prompt_len", "seq_len")
    return {"config": dict(config), **{k: v for k, v in inputs.items() if k not in shape}}


def _entry(key: Mapping[str, Any], stamp: str, use: bool = True) -> dict[str, Any]:
    hit = analysis_cache.get(KIND, key, transformers=installed_version(), extra=stamp, use=use)
    return hit if isinstance(hit, dict) else {}


def _candidates(key: Mapping[str, Any], stamp: str, use: bool) -> list[Any]:
    table = shipped_table()
    shipped: list[Any] = []
    if table.get("simulator") == stamp:
        release = table.get("releases", {}).get(installed_version() or "", {})
        shipped = list(release.get(analysis_cache.content_hash(key), []))
    return [*shipped, *_entry(key, stamp, use).get("formulas", [])]


def lookup(key: Mapping[str, Any], stamp: str, *, batch: int, prompt: int, seq_len: int, use_cache: bool = True
           ) -> Any | None:
    """The SimResult at this shape from a stored formula whose region holds it, or None (`use_cache=False`,
    --no-cache: the shipped formulas only)."""
    for raw in _candidates(key, stamp, use_cache):
        try:
            formula = Formula.model_validate(raw)
            if applies(formula, key["config"], batch, prompt, seq_len):
                return evaluate(formula, batch, prompt, seq_len)
        except (ValueError, Refused, IndexError, KeyError, ZeroDivisionError) as exc:  # a foreign entry: a miss
            _log.debug("memory formula unusable: %s", exc)
    return None


def refused(key: Mapping[str, Any], stamp: str) -> bool:
    """Whether a fit was refused for this config variant: it simulates at every shape instead."""
    return bool(_entry(key, stamp).get("refused"))


def record(key: Mapping[str, Any], stamp: str, *, architecture: str | None, batch: int, prompt: int,
           seq_len: int, generative: bool) -> Formula | None:
    """Fit the formula of this shape's region (importing torch; one fit, a few seconds, so a first run stays
    short: another batch class or length region is fitted when first simulated) and keep it; or mark the config
    refused. Returns the formula."""
    entry = _entry(key, stamp)
    mine = None
    for b in (batch,):
        try:
            formula = fit_one(key, architecture=architecture, batch=b, prompt=prompt, seq_len=seq_len,
                              generative=generative)
        except Refused as exc:
            _log.debug("no exact memory formula: %s", exc)
            entry["refused"] = str(exc)[:500]
            break
        except Exception as exc:  # noqa: BLE001 - a class the recorder cannot run: simulate as before
            _log.debug("memory formula failed: %s: %s", type(exc).__name__, exc)
            return None
        entry["formulas"] = [*entry.get("formulas", []), formula.model_dump(mode="json")][-MAX_KEPT:]
        mine = mine or formula
    analysis_cache.put(KIND, key, entry, transformers=installed_version(), extra=stamp)
    return mine


def fit_one(key: Mapping[str, Any], *, architecture: str | None, batch: int, prompt: int, seq_len: int,
            generative: bool) -> Formula:
    """`trace_formula.fit` for a formula key (raises Refused)."""
    from advisor.estimate.trace_formula import fit

    config = copy.deepcopy(dict(key["config"]))  # a config class may edit nested dicts
    return fit(config, architecture, dtype=key["dtype"], attn=key["attn"],
               quantization=key["quantization"], padded=key["padded"], device=key["device"],
               capability=key["capability"], sdpa_backends=key["sdpa_backends"], batch=batch, prompt=prompt,
               seq_len=seq_len, generative=generative)
