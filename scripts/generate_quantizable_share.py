#!/usr/bin/env python
"""Build `data/quantizable_share.json`: per model type and release, the share of weights bitsandbytes quantizes.

Why this exists (issue 17): transformers 5.5+ replaces only modules whose type is exactly `nn.Linear` (or
`Conv1D`), so 8-bit / 4-bit loading leaves a subclass such as `FalconLinear` and the fused 3-D experts of the
5.x mixture-of-experts models in bf16, silently. 4.x and 5.0-5.4 took any `nn.Linear` subclass (`isinstance`),
and 4.x built experts from per-expert `nn.Linear` modules, so the answer depends on the target's release. The
advisor's weight estimate needs the share for configs it cannot build, and QUANT007 names the reason.

How: every model type of a release (`CONFIG_MAPPING_NAMES`) is built from its default config on the meta device
(no memory) with its most representative head class, and `advisor.model.quantizable.breakdown` applies that release's
replacement rule, read from the release's own `integrations/bitsandbytes.py` by `advisor.knowledge.quantizable_share.read_rule`
(file and line per release under `rules`). A release other than the installed one is installed into a
throwaway directory (`pip install --target <tmp>/advisor-quantizable-share/tf-X transformers==X`, its own dependencies, never torch) and
read by this script in a child process with `PYTHONPATH=/tmp/tf-X:<repo>`, under this interpreter's torch.
Types that cannot be built from a default config are listed under `not_built` with the error.

Layout (compact): `releases` in order; `model_types[type]` is a run-length list `[[first_release, row], ...]`
(a row stands until the next run; null where the type is absent or not built), each row
`[share of all weights, share of non-embedding weights, parameters, reason kind, reason]`, the reason set only
below `LOW_SHARE` of the non-embedding weights. `classes` and `not_built` are run-length lists the same way.
Shares are of parameter elements (all in one dtype on the meta device, so they are byte shares too).

    python scripts/generate_quantizable_share.py                          # the installed release (kept: others)
    python scripts/generate_quantizable_share.py --releases 5.17.0 4.57.6 # install and read these too
    python scripts/generate_quantizable_share.py --only mixtral falcon --output /tmp/q.json
    python scripts/generate_quantizable_share.py --all                    # every stored release, by reuse

`--all` reads each release of data/release_constraints.json missing from the output, newest first: a type whose
structure key (scripts/quantizable_share_key.py, from the wheel) a reading already has keeps that row, and only
the rest is built; `reuse.releases[R]` records `built` and `reused` (docs/quantizable-share.md,
scripts/check_share_reuse.py compares it with full readings).

Per-release readings are cached in `.dev/quantizable_share/` (a rerun only reads what is missing); releases
already in the output file are kept from it, the installed one included (`--refresh` re-reads).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
DEFAULT_OUTPUT = REPO / "data" / "quantizable_share.json"
DEFAULT_CACHE = REPO / ".dev" / "quantizable_share"
WHEELS = Path("/work/cache/tf-wheels")  # used as --find-links when it exists; PyPI otherwise

def read_one(model_type: str) -> tuple[str, dict[str, Any]]:
    """One model type of the importable release (`advisor.model.quantizable.read_row`); an error is a result too."""
    from advisor.model.quantizable import read_row

    return model_type, read_row(model_type)


def read_installed(types: list[str] | None, jobs: int) -> dict[str, Any]:
    """One release's reading: the installed transformers, every model type (or `types`)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from advisor.knowledge.quantizable_share import installed_rule

    rule = installed_rule()
    if rule is None or rule.release != transformers.__version__:
        raise SystemExit(f"cannot read the replacement rule of transformers {transformers.__version__}")
    results: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        for model_type, result in pool.map(read_one, sorted(types or CONFIG_MAPPING_NAMES), chunksize=8):
            results[model_type] = result
    return {
        "release": transformers.__version__,
        "rule": rule.as_json(),
        "rows": {t: r["row"] for t, r in sorted(results.items()) if "row" in r},
        "classes": {t: r["class"] for t, r in sorted(results.items()) if "row" in r},
        "not_built": {t: r["error"] for t, r in sorted(results.items()) if "error" in r},
    }


def _install(release: str, target: Path) -> str | None:
    """`pip install --target` one release with its own dependencies; an error message or None."""
    marker = target / ".installed-by-generate-quantizable-share"
    if marker.exists():
        return None
    shutil.rmtree(target, ignore_errors=True)
    args = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--target", str(target)]
    if WHEELS.is_dir():
        args += ["--find-links", str(WHEELS)]
    proc = subprocess.run([*args, f"transformers=={release}"], check=False, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        return f"pip install transformers=={release} failed: {proc.stderr.strip()[-500:]}"
    marker.touch()
    return None


def read_release(release: str, *, cache: Path, jobs: int, refresh: bool, keep_env: bool,
                 only: list[str] | None = None, cache_name: str | None = None) -> dict[str, Any]:
    """Install `release` into a throwaway directory and read it in a child process (cached per release;
    `cache_name` for a reading of `only` some types, so that it never stands for a full one)."""
    cached = cache / (cache_name or f"{release}.json")
    if cached.exists() and not refresh:
        print(f"{release}: cached", file=sys.stderr)
        return dict(json.loads(cached.read_text()))
    target = Path(tempfile.gettempdir()) / "advisor-quantizable-share" / f"tf-{release}"
    started = time.time()
    error = _install(release, target)
    if error:
        raise SystemExit(error)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(target), str(REPO)]), PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", PYTHONWARNINGS="ignore")
    out = cache / f"{cached.stem}.partial.json"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the cwd may shadow the target's packages
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--emit-release", str(out),
                               "--jobs", str(jobs), *(["--only", *only] if only else [])], check=False, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=3600)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"reading transformers {release} failed: {proc.stderr.strip()[-800:]}")
    result = dict(json.loads(out.read_text()))
    if result["release"] != release:
        raise SystemExit(f"read transformers {result['release']} instead of {release}")
    result["seconds"] = round(time.time() - started, 1)  # install + child reading, for the reuse check's record
    cached.write_text(json.dumps(result), encoding="utf-8")
    out.unlink()
    if not keep_env:
        shutil.rmtree(target, ignore_errors=True)
    print(f"{release}: {len(result['rows'])} built, {len(result['not_built'])} not built, rule "
          f"{result['rule']['mode']} at line {result['rule']['line']} ({time.time() - started:.0f} s)", file=sys.stderr)
    return result


def _runs(values: list[Any], releases: list[str]) -> list[list[Any]]:
    """[[first_release, value], ...] at each change of `values` along `releases` (identical rows deduped)."""
    runs: list[list[Any]] = []
    for release, value in zip(releases, values):
        if not runs or runs[-1][1] != value:
            runs.append([release, value])
    return runs


def merge(readings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fold per-release readings into the compact table (see the module doc)."""
    from advisor.model.quantizable import LOW_SHARE

    releases = sorted(readings, key=Version)
    types = sorted({t for r in readings.values() for key in ("rows", "not_built") for t in r[key]})

    def folded(key: str) -> dict[str, Any]:
        out = {}
        for t in types:
            runs = _runs([readings[r][key].get(t) for r in releases], releases)
            if any(value is not None for _, value in runs):
                out[t] = runs
        return out

    return {
        "schema_version": 2,
        "description": "Per model type and transformers release: the share of weights transformers' bitsandbytes "
                       "integration replaces (8-bit and 4-bit alike), built from the default config on the meta "
                       "device under that release's own replacement rule (`rules`, file and line per release).",
        "generated_by": "scripts/generate_quantizable_share.py",
        "releases": releases,
        "low_share": LOW_SHARE,
        "row_fields": ["share", "non_embedding_share", "params", "reason_kind", "reason"],
        "rules": {r: readings[r]["rule"] for r in releases},
        "model_types": folded("rows"),
        "classes": folded("classes"),
        "not_built": folded("not_built"),
        **_reuse_record(readings, releases),
    }


def _reuse_record(readings: dict[str, dict[str, Any]], releases: list[str]) -> dict[str, Any]:
    """`reuse`: per release how many types were built and how many reused by structure key (issue 17), with the
    key's definition; a release read in full has every type built."""
    from quantizable_share_key import KEY_DEFINITION

    counts = {}
    for r in releases:
        types = len(readings[r]["rows"]) + len(readings[r]["not_built"])
        counts[r] = {"built": readings[r].get("built", types), "reused": readings[r].get("reused", 0)}
        if "seconds" in readings[r]:
            counts[r]["seconds"] = readings[r]["seconds"]
    return {"reuse": {"key": KEY_DEFINITION, "releases": counts}}


def explode(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-release readings a stored table was folded from (the inverse of `merge`)."""
    from advisor.knowledge.quantizable_share import value_at

    releases = list(table.get("releases", []))
    out: dict[str, dict[str, Any]] = {}
    for release in releases:
        reading: dict[str, Any] = {"release": release, "rule": table["rules"][release]}
        counts = table.get("reuse", {}).get("releases", {}).get(release, {})
        if counts.get("reused"):  # a reuse reading keeps its counts; a full one needs none
            reading.update(counts)
        elif "seconds" in counts:  # a full reading keeps how long it took
            reading["seconds"] = counts["seconds"]
        for key in ("model_types", "classes", "not_built"):
            values = {t: value_at(runs, release, releases) for t, runs in table.get(key, {}).items()}
            reading["rows" if key == "model_types" else key] = {t: v for t, v in values.items() if v is not None}
        out[release] = reading
    return out


def _compact(table: dict[str, Any]) -> str:
    """JSON with one line per top-level scalar and per row of the dict-valued keys: compact, readable diffs."""
    parts = []
    for key, value in table.items():
        if isinstance(value, dict):
            inner = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{inner}\n }}" if value else f" {json.dumps(key)}: {{}}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def stored_releases() -> list[str]:
    """The releases the advisor knows (data/release_constraints.json): the ones the table must cover."""
    raw = json.loads((REPO / "data" / "release_constraints.json").read_text(encoding="utf-8"))
    return sorted(raw["releases"], key=Version)


def read_all(readings: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """Add a reuse reading (quantizable_share_reuse) of every stored release missing from `readings`, newest
    first; the store of keys starts from every reading already there, and the table is written after each
    release so that a stopped run keeps what it did."""
    from quantizable_share_reuse import entries, release_keys, reuse_reading

    store: dict[str, dict[str, Any]] = {}
    for release in sorted(readings, key=Version):
        keys = release_keys(release, wheels=args.wheels, cache=args.cache_dir)["keys"]
        store.update(entries(readings[release], keys))
    first = [r for r in args.first if r in stored_releases()]
    for release in [*first, *reversed(stored_releases())]:  # newest first: the releases most asked about
        if release in readings:
            continue

        def build(types: list[str], release: str = release) -> dict[str, Any]:
            for refresh in (args.refresh, True):  # a cached build missing some of `types` (the key changed) is re-read
                built = read_release(release, cache=args.cache_dir, jobs=args.jobs, refresh=refresh,
                                     keep_env=args.keep_envs, only=types, cache_name=f"{release}.built.json")
                if set(types) <= set(built["rows"]) | set(built["not_built"]):
                    break
            return {**built, **{key: {t: v for t, v in built[key].items() if t in types}
                                for key in ("rows", "classes", "not_built")}}

        readings[release] = reuse_reading(release, store, wheels=args.wheels, cache=args.cache_dir, build=build)
        args.output.write_text(_compact(merge(readings)), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="these model types only (the installed release; for a quick look)")
    parser.add_argument("--releases", nargs="*", default=[], help="other releases to install and read")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--refresh", action="store_true",
                        help="re-read releases already cached or already in the output file")
    parser.add_argument("--keep-envs", action="store_true", help="keep the install directories (under the temp dir)")
    parser.add_argument("--all", action="store_true",
                        help="every release of data/release_constraints.json not yet in the output file, reusing rows "
                             "by structure key and building only new keys (issue 17)")
    parser.add_argument("--first", nargs="*", default=[], help="with --all: read these releases first (the ones "
                        "scripts/check_share_reuse.py will verify against full readings)")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help="the folder of transformers wheels (--all)")
    parser.add_argument("--emit-release", type=Path, help=argparse.SUPPRESS)  # child mode: one reading as JSON
    args = parser.parse_args()

    if args.emit_release:
        args.emit_release.write_text(json.dumps(read_installed(args.only, args.jobs)), encoding="utf-8")
        return 0
    import transformers

    started = time.time()
    readings: dict[str, dict[str, Any]] = {}
    if args.only:  # a quick look: nothing cached, nothing kept from the output file
        args.cache_dir = Path(tempfile.mkdtemp(prefix="quantizable-share-"))
    elif args.output.exists():
        stored = json.loads(args.output.read_text(encoding="utf-8"))
        if stored.get("schema_version") == 2:
            readings.update(explode(stored))
    if args.only or args.refresh or transformers.__version__ not in readings:  # else kept from the output file
        readings[transformers.__version__] = read_installed(args.only, args.jobs)
    for release in sorted(set(args.releases) - {transformers.__version__}, key=Version):
        readings[release] = read_release(release, cache=args.cache_dir, jobs=args.jobs, refresh=args.refresh,
                                         keep_env=args.keep_envs, only=args.only)
    if args.all:
        read_all(readings, args)
    table = merge(readings)
    args.output.write_text(_compact(table), encoding="utf-8")
    for release in table["releases"]:
        rows = readings[release]["rows"]
        low = sum(1 for r in rows.values() if r[3])
        print(f"{release}: {len(rows)} built, {low} below {table['low_share']:.0%} of non-embedding weights, "
              f"{len(readings[release]['not_built'])} not built", file=sys.stderr)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes), {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
