"""The installed transformers release, and its facts when the shipped tables do not hold it.

Why: a new transformers comes out every few weeks, and `pip install` takes it the same day. The tables in
`data/` hold the releases that were read when the advisor was built; for a newer installed release, answering
with the newest stored release's facts gave harmful advice (5.23's `kernels` window for 5.25, which requires
another). So the same readers the generators run over each wheel run once over the installed package: the
facts of `release_reader` (text and AST, no import), and in child processes that import it (transformers
executes its own mappings): its model types, the attention support of every class, how each model type encodes
positions, and the Hub-kernel mapping. The result is kept in the user cache, keyed by the release and the
digest of the wheel's RECORD, so every later run is as fast as a shipped release, and an edited install is
read again.

A fact that cannot be derived stays unknown for that release: it is never another release's value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = [
    "Installed",
    "attention_table",
    "child_env",
    "derived_facts",
    "installed",
    "installed_version",
    "quantizer_rows",
    "release_info",
]

# Each child reading the installed classes gets at most this long; a release whose import hangs is unknown.
_CHILD_TIMEOUT_S = 300.0
_LOG = logging.getLogger("advisor")  # progress lines: the CLI shows them on stderr
_SHARDS = 2  # children reading the classes at once: the 2-core box the first-run target is set for


@dataclass(frozen=True)
class Installed:
    """The installed transformers: version, the folder holding the package, and the digest of its RECORD."""

    version: str
    root: Path
    record: str


@cache
def installed_version() -> str | None:
    """The installed transformers release, from its metadata: no import (the one answer every module asks)."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


@cache
def installed() -> Installed | None:
    """Where the installed transformers lives and what its files are (None: not installed, or no files)."""
    try:
        dist = metadata.distribution("transformers")
    except metadata.PackageNotFoundError:
        return None
    init = dist.locate_file("transformers/__init__.py")
    root = Path(str(init)).parent.parent
    if not (root / "transformers" / "__init__.py").is_file():
        return None
    record = dist.read_text("RECORD") or f"{dist.version} {root}"  # an editable or hand-made install
    return Installed(dist.version, root, hashlib.sha256(record.encode("utf-8")).hexdigest()[:24])


def is_newer(version: str | None, newest: str | None) -> bool:
    """Whether `version` is past the minor of `newest` (a patch of a stored minor is that minor's release)."""
    if version is None or newest is None:
        return False
    try:
        wanted, last = Version(version), Version(newest)
    except InvalidVersion:
        return False
    return (wanted.major, wanted.minor) > (last.major, last.minor)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that imports transformers for the advisor: offline (it never reaches the Hub
    unless the user asked) and quiet (its logging is not the advisor's output)."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               PYTHONWARNINGS="ignore", TOKENIZERS_PARALLELISM="false", **(extra or {}))
    return env


def _run_child(part: str, payload: Any) -> Any:
    """Run `advisor.knowledge.derive_worker PART` with `payload` on stdin; its JSON answer, or None."""
    try:
        done = subprocess.run([sys.executable, "-m", "advisor.knowledge.derive_worker", part],
                              input=json.dumps(payload), capture_output=True, text=True, env=child_env(),
                              timeout=_CHILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except ValueError:
        return None


def _cached(part: str, inst: Installed, compute: Callable[[], Any], cache: bool) -> Any:
    """`compute()` through the user cache, keyed by release, RECORD digest and the readers' code (`cache=False`:
    --no-cache, computed and not stored)."""
    from advisor.io import analysis_cache
    from advisor.knowledge import derive_worker, introspect, release_reader

    stamp = ",".join(analysis_cache.source_stamp(f) for f in (derive_worker.main, release_reader.read_facts,
                                                               introspect.read_attention_support))
    kind, key = f"release-{part}", {"record": inst.record}
    hit = analysis_cache.get(kind, key, transformers=inst.version, extra=stamp, use=cache)
    if hit is not None:
        return hit
    value = compute()
    if value is not None:
        analysis_cache.put(kind, key, value, transformers=inst.version, extra=stamp, use=cache)
    return value


def derived_facts(inst: Installed, *, cache: bool = True) -> dict[str, dict[str, Any]]:
    """Every fact of `data/release_constraints.json`, read from the installed files by the generators'
    readers."""
    from advisor.knowledge.release_reader import Release, read_facts

    def read() -> dict[str, dict[str, Any]]:
        facts = read_facts(Release(inst.version, inst.root))
        return {name: {k: v for k, v in item.items() if k != "by_release"} for name, item in facts.items()}

    value: dict[str, dict[str, Any]] = _cached("facts", inst, read, cache)
    return value


def release_info(inst: Installed, *, cache: bool = True) -> dict[str, Any] | None:
    """What the installed release says when imported: its model types (with their modeling module), how each
    encodes positions, and the Hub-kernel mapping. None when it does not import here."""
    def read() -> Any:
        _LOG.info(f"reading the model types and kernel mapping of transformers {inst.version} from the installed "
                  "package (once; cached after)")
        return _run_child("info", {})

    value: dict[str, Any] | None = _cached("info", inst, read, cache)
    return value


def attention_table(inst: Installed, *, cache: bool = True) -> dict[str, Any] | None:
    """The attention support of every model type of the installed release (`AttentionSupportTable` JSON), read
    in two children at once (each imports transformers and builds composites on the meta device). None when it
    cannot be read here."""

    def read() -> dict[str, Any] | None:
        started = time.monotonic()
        _LOG.info(f"reading the attention support of every model type of transformers {inst.version} from the "
                  "installed package (once, about 20 s; cached after)")
        with ThreadPoolExecutor(max_workers=_SHARDS) as pool:
            tables = list(pool.map(lambda i: _run_child("attention", [i, _SHARDS]), range(_SHARDS)))
        if any(t is None for t in tables):
            return None
        merged: dict[str, Any] = dict(tables[0])
        merged["architectures"] = sorted((row for t in tables for row in t["architectures"]),
                                         key=lambda row: str(row["model_type"]))
        merged["skipped"] = sorted(line for t in tables for line in t["skipped"])
        merged["generated_by"] = "advisor (read from the installed package)"
        _LOG.info(f"read transformers {inst.version} in {time.monotonic() - started:.0f} s")
        return merged

    value: dict[str, Any] | None = _cached("attention", inst, read, cache)
    return value


def quantizer_rows(inst: Installed, *, cache: bool = True) -> list[dict[str, Any]] | None:
    """The installed release's quantizers run under every target condition (`advisor.knowledge.quantizer_run`,
    the generator's worker, in one child: about 5 s); None when it does not run here."""
    def read() -> list[dict[str, Any]] | None:
        _LOG.info(f"running the quantizers of transformers {inst.version} from the installed package (once; cached "
                  "after)")
        try:
            done = subprocess.run([sys.executable, "-m", "advisor.knowledge.quantizer_run"], capture_output=True,
                                  text=True, env=child_env(), timeout=_CHILD_TIMEOUT_S, check=False)
            rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
            return None
        return rows

    value: list[dict[str, Any]] | None = _cached("quantizers", inst, read, cache)
    return value
