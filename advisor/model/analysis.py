"""Answers about a model that need transformers to compute, served without it when already known.

Two answers: the exact parameter counts (a meta-device build, `model.count_on_meta`) and the attention
implementations the model's class declares (`support._from_installed`). Each is looked up first in
`data/model_analysis.json` (precomputed for the shipped models under several transformers releases by
`scripts/precompute_models.py`, each distinct value stored once with the releases it holds for), then in
the user's analysis cache (`advisor.io.analysis_cache`); counts then by a shipped model's formula
(`advisor.model.param_formula`: a relative of a shipped model with other sizes), and only then computed, and the
result cached.
So a shipped model, or a config seen before, is planned without importing torch or transformers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version

__all__ = [
    "PRECOMPUTED_FILE",
    "cached_attention_support",
    "cached_counts",
    "count_key",
    "counting_version",
    "counts_and_origin",
    "precomputed",
    "shipped_relative",
    "stored_releases",
]

PRECOMPUTED_FILE = "model_analysis.json"
# NOTE: bump when `count_on_meta` changes what it counts in a way its source text does not show (issue 14).
COUNT_VERSION = 1
_IGNORED_KEYS = ("transformers_version", "_name_or_path")
Counts = tuple[int, int, str | None]


def count_key(config: dict[str, Any], architecture: str | None, trust_remote_code: bool) -> dict[str, Any]:
    """What a parameter count depends on: the config minus its bookkeeping fields, the class, and consent."""
    return {
        "config": {k: v for k, v in config.items() if k not in _IGNORED_KEYS},
        "architecture": architecture,
        "trust_remote_code": trust_remote_code,
    }


@lru_cache(maxsize=1)
def counting_version() -> str:
    """A stamp of the counting code: a changed `count_on_meta` never serves counts made by the old one."""
    from advisor.model.meta import build_on_meta, count_on_meta

    stamps = (analysis_cache.source_stamp(fn) for fn in (count_on_meta, build_on_meta))
    return f"{COUNT_VERSION}:" + ":".join(stamps)


@lru_cache(maxsize=1)
def precomputed() -> dict[str, Any]:
    """The shipped precomputation, or an empty one when the file is missing or unreadable."""
    from advisor.knowledge.notes import precomputed_models

    return precomputed_models(PRECOMPUTED_FILE)


def _version_key(release: str) -> tuple[int, ...]:
    """'5.17.0' -> (5, 17, 0), for ordering releases; an unreadable one sorts first."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(release).release
    except InvalidVersion:
        return (0,)


def _release_value(entries: Any, release: str | None, *, nearest: bool) -> Any | None:
    """From `[{"releases": [...], "value": ...}, ...]` (values deduplicated across releases), the value stored for
    `release`; with `nearest`, else the one of the stored release closest below it (else the oldest above)."""
    if not isinstance(entries, list):
        return None
    rows = [(r, e.get("value")) for e in entries if isinstance(e, dict) and isinstance(e.get("releases"), list)
            for r in e["releases"] if isinstance(r, str)]
    for stored, value in rows:
        if stored == release:
            return value
    if not nearest or not rows:
        return None
    want = _version_key(release or "0")
    below = [row for row in rows if _version_key(row[0]) <= want]
    pick = max(below, key=lambda row: _version_key(row[0])) if below else min(rows, key=lambda row: _version_key(row[0]))
    return pick[1]


def _shipped_counts(digest: str, stamp: str, release: str | None) -> Counts | None:
    """The precomputed counts for this release, or those of the nearest stored release (parameter counts
    rarely change between releases; a model never shipped is counted, never guessed)."""
    shipped = precomputed()
    if shipped.get("counting_version") != stamp:
        return None
    return _counts(_release_value(shipped.get("parameter_counts", {}).get(digest), release, nearest=True))


def _formula_counts(config: dict[str, Any], architecture: str | None, stamp: str, release: str | None) -> Counts | None:
    """A config never seen, of a shipped architecture with other sizes: counted by that model's formula
    (`advisor.model.param_formula`, derived by scripts/precompute_models.py), without importing transformers."""
    found = _relative(config, architecture, stamp, release)
    return found[1] if found else None


def _relative(config: dict[str, Any], architecture: str | None, stamp: str, release: str | None
              ) -> tuple[str, Counts] | None:
    """(hub id, counts) of the shipped model whose parameter formula answers this config: its relative."""
    from advisor.model.param_formula import evaluate

    shipped = precomputed()
    if shipped.get("counting_version") != stamp:
        return None
    for hub_id, entries in shipped.get("formulas", {}).items():
        formula = _release_value(entries, release, nearest=True)
        if isinstance(formula, dict):
            try:
                found = evaluate(formula, config, architecture)
            except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
                found = None  # a malformed row: the meta build answers
            if found is not None:
                return str(hub_id), found
    return None


def shipped_relative(config: dict[str, Any], architecture: str | None, release: str | None) -> str | None:
    """The hub id of the shipped model this config is a relative of (same classes and options, other sizes: its
    parameter formula answers it), or None. Whatever the classes decide, not the sizes, is the relative's too."""
    found = _relative(config, architecture, counting_version(), release)
    return found[0] if found else None


def stored_releases() -> list[str]:
    """The transformers releases data/model_analysis.json holds answers for."""
    releases = precomputed().get("releases")
    return [r for r in releases if isinstance(r, str)] if isinstance(releases, list) else []


def _counts(value: Any) -> tuple[int, int, str | None] | None:
    """(total, quantizable, note on what bitsandbytes leaves unquantized) from a stored JSON list."""
    if (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value[:2])
            and (value[2] is None or isinstance(value[2], str))):
        return int(value[0]), int(value[1]), value[2]
    return None


def cached_counts(
    config: dict[str, Any],
    architecture: str | None,
    trust_remote_code: bool,
    compute: Callable[[dict[str, Any], str | None, bool], Counts | None],
) -> Counts | None:
    """(total, quantizable, note) parameters: shipped table, then the user cache, then `compute` (cached after)."""
    return counts_and_origin(config, architecture, trust_remote_code, compute)[0]


Origin = Literal["shipped", "cache", "formula", "computed"]


def counts_and_origin(
    config: dict[str, Any],
    architecture: str | None,
    trust_remote_code: bool,
    compute: Callable[[dict[str, Any], str | None, bool], Counts | None],
    *,
    cache: bool = True,
) -> tuple[Counts | None, Origin]:
    """The counts, and where they came from: "computed" means `compute` ran (it imports transformers), and the
    memory estimate simulates only a model whose analysis paid that import anyway (advisor.estimate.adapter,
    issue 14)."""
    key = count_key(config, architecture, trust_remote_code)
    digest = analysis_cache.content_hash(key)
    stamp = counting_version()
    tf = installed_version()
    found = _shipped_counts(digest, stamp, tf)
    if found is not None:
        return found, "shipped"
    found = _counts(analysis_cache.get("param-count", key, transformers=tf, extra=stamp, use=cache))
    if found is not None:
        return found, "cache"
    found = None if trust_remote_code else _formula_counts(config, architecture, stamp, tf)
    if found is not None:
        return found, "formula"
    # NOTE: transformers' config classes rewrite nested dicts in place (rope_scaling), so the build gets a copy
    counted = compute(copy.deepcopy(config), architecture, trust_remote_code)
    if counted is not None:
        analysis_cache.put("param-count", key, [int(counted[0]), int(counted[1]), counted[2]], transformers=tf, extra=stamp,
                           use=cache)
    return counted, "computed"


def _support(value: Any) -> dict[str, bool] | None:
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, bool) for k, v in value.items()):
        return dict(value)
    return None


def cached_attention_support(
    model_type: str, architecture: str | None, compute: Callable[[], dict[str, bool] | None], *, cache: bool = True
) -> dict[str, bool] | None:
    """The installed transformers' answer for this class: shipped (same release), cache (unless --no-cache), then
    `compute`."""
    tf = installed_version()
    key = {"model_type": model_type, "architecture": architecture}
    if tf is not None:  # the flags of exactly this release: a class may gain or lose one in any release
        found = _support(_release_value(precomputed().get("attention_support", {}).get(analysis_cache.content_hash(key)),
                                        tf, nearest=False))
        if found is not None:
            return found
    found = _support(analysis_cache.get("attention-support", key, transformers=tf, use=cache))
    if found is not None:
        return found
    support = compute()
    if support is not None:  # "class not found" is not cached: a repaired install must be asked again
        analysis_cache.put("attention-support", key, support, transformers=tf, use=cache)
    return support
