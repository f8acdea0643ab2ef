"""Read a release's quantizable shares by reusing rows of the same structure key (issue 17).

Why: `scripts/generate_quantizable_share.py --all` covers every stored release (47) in the time of a few full
readings: per release it computes the structure keys from the wheel (`quantizable_share_key`), takes the row
of every type whose key some reading already has, and builds only the rest on the meta device. A reading made
this way records `built` and `reused`; `scripts/check_share_reuse.py` compares it with a full reading.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import quantizable_share_key as keymod

KEY_SOURCE = hashlib.sha256(Path(keymod.__file__).read_bytes()).hexdigest()[:16]  # a cache of keys follows the code


def wheel_for(release: str, wheels: Path) -> Path:
    """The stored wheel of `release` (the keys are read from it without installing)."""
    path = wheels / f"transformers-{release}-py3-none-any.whl"
    if not path.is_file():
        raise SystemExit(f"no wheel for transformers {release} in {wheels}: pip download --no-deps -d {wheels} "
                         f"transformers=={release}")
    return path


def release_keys(release: str, *, wheels: Path, cache: Path) -> dict[str, Any]:
    """{"rule": the release's rule as JSON, "keys": {type: key or None}}, cached per release and key code."""
    from advisor.knowledge.quantizable_share import read_rule

    cached = cache / "keys" / f"{release}.json"
    if cached.exists():
        stored = json.loads(cached.read_text(encoding="utf-8"))
        if stored.get("key_source") == KEY_SOURCE:
            return dict(stored)
    started = time.time()
    files = keymod.read_wheel(wheel_for(release, wheels))
    with tempfile.TemporaryDirectory() as tmp:
        for rel in keymod.SKIP_FILES:
            if rel in files:
                target = Path(tmp) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(files[rel])
        rule = read_rule(Path(tmp), release)
    keys = keymod.structure_keys(files, keymod.rule_digest(rule.mode, files))
    result = {"release": release, "key_source": KEY_SOURCE, "rule": rule.as_json(), "keys": keys,
              "seconds": round(time.time() - started, 1)}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result), encoding="utf-8")
    return result


def entries(reading: dict[str, Any], keys: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    """key -> what a reading says of the type with that key ({"row", "class"} or {"error"})."""
    out: dict[str, dict[str, Any]] = {}
    for t, row in reading["rows"].items():
        if keys.get(t):
            out[str(keys[t])] = {"row": row, "class": reading["classes"].get(t)}
    for t, error in reading["not_built"].items():
        if keys.get(t):
            out[str(keys[t])] = {"error": error}
    return out


def reuse_reading(release: str, store: dict[str, dict[str, Any]], *, wheels: Path, cache: Path,
                  build: Callable[[list[str]], dict[str, Any]]) -> dict[str, Any]:
    """One release's reading: rows of known keys from `store`, the rest from `build(types)` (a child reading of
    those types only). Adds what was built to `store`."""
    started = time.time()
    found = release_keys(release, wheels=wheels, cache=cache)
    keys: dict[str, str | None] = found["keys"]
    to_build = sorted(t for t, k in keys.items() if k is None or k not in store)
    reading: dict[str, Any] = {"release": release, "rule": found["rule"], "rows": {}, "classes": {},
                               "not_built": {}}
    if to_build:
        built = build(to_build)
        if built["rule"] != found["rule"]:
            raise SystemExit(f"transformers {release}: the installed rule differs from the wheel's")
        for key in ("rows", "classes", "not_built"):
            reading[key].update(built[key])
        store.update(entries(built, keys))
    reused = 0
    for t, k in keys.items():
        if t in to_build or k is None:
            continue
        entry = store[k]
        reused += 1
        if "error" in entry:
            reading["not_built"][t] = entry["error"]
        else:
            reading["rows"][t] = entry["row"]
            reading["classes"][t] = entry["class"]
    for key in ("rows", "classes", "not_built"):
        reading[key] = dict(sorted(reading[key].items()))
    reading.update(built=len(to_build), reused=reused, seconds=round(time.time() - started, 1))
    print(f"{release}: {len(to_build)} built, {reused} reused ({reading['seconds']:.0f} s)", file=sys.stderr)
    return reading
