#!/usr/bin/env python
"""Build `data/attention_history.json`: attention implementations each architecture declared, per release.

Why this exists: the advisor must answer "does model X support SDPA / FlashAttention on *your* transformers",
and the answer changed release by release. Rather than transcribe docs, this script installs each release
into a throwaway directory and asks its model classes, through the same reader the advisor uses at run time
(`advisor.knowledge.introspect`), so the table is exactly what `from_pretrained(attn_implementation=...)`
of that release checks.

How: for each release, `pip install --target DIR transformers==X` (its own declared dependencies, which
never include torch), then run `python -m advisor.knowledge.introspect` with `PYTHONPATH=DIR:<repo>` under
this interpreter, so the torch already installed here is reused and nothing multi-GB is downloaded.
Wheels are kept in a wheelhouse and each release's reading in a results cache (both under `.dev/`), so a
rerun only does what is missing. At most `--jobs` (default 2) releases are installed and read at once.

    python scripts/generate_attention_history.py                       # latest patch of each minor >= 4.36
    python scripts/generate_attention_history.py --releases 4.36.2 5.24.0
    python scripts/generate_attention_history.py --refresh             # re-read cached releases
    python scripts/generate_attention_history.py --add 5.25.0          # read one new release, keep the stored ones

It also records which model types optimum's BetterTransformer covered (read statically from the optimum
1.x wheel), and in which optimum / transformers release that path disappeared, checked in those releases.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "data" / "attention_history.json"
DEFAULT_CACHE = REPO / ".dev" / "attention_history"
MIN_RELEASE = Version("4.36")
IMPLS = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
OPTIMUM_BT_RELEASE = "1.27.0"  # last optimum 1.x: the last one that ships optimum.bettertransformer
OPTIMUM_FIRST_WITHOUT_BT = "2.0.0"
OPTIMUM_SCAN_FROM = "1.13.0"  # earlier 1.x lists are scanned from here, to see which types left before 1.27
BT_INIT = "optimum/bettertransformer/models/__init__.py"
PIP_NOISE = re.compile(r"^WARNING: Location .* is ignored")

_download_lock = threading.Lock()  # one pip download at a time: they share the wheelhouse


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _pip(python: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if not PIP_NOISE.match(line))
    return proc


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-800:]


def _index_versions(python: str, package: str) -> list[Version]:
    """Final releases of `package` on the package index."""
    proc = _pip(python, "index", "versions", package)
    match = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"could not list {package} releases: {_tail(proc.stderr or proc.stdout)}")
    versions = [Version(text.strip()) for text in match.group(1).split(",")]
    return sorted(v for v in versions if not (v.is_prerelease or v.is_devrelease))


def discover_releases(python: str) -> list[str]:
    """Latest final patch of every transformers minor >= 4.36, from the package index."""
    latest: dict[tuple[int, int], Version] = {}
    for version in _index_versions(python, "transformers"):
        if version >= MIN_RELEASE:
            latest[(version.major, version.minor)] = version  # ascending, so the last one wins
    return [str(v) for v in sorted(latest.values())]


def _ensure_wheels(python: str, wheels: Path, requirement: str, *, no_deps: bool = False) -> str | None:
    """Download `requirement` (and its dependencies) into the wheelhouse; an error message or None."""
    with _download_lock:
        args = ["download", "--quiet", "--prefer-binary", "--dest", str(wheels), requirement]
        if no_deps:
            args.insert(1, "--no-deps")
        proc = _pip(python, *args)
    return None if proc.returncode == 0 else f"pip download {requirement} failed: {_tail(proc.stderr)}"


def _install(python: str, wheels: Path, target: Path, release: str) -> str | None:
    """Install transformers==release with its own dependencies into `target`; an error message or None."""
    return install_wheel(python, wheels, target, f"transformers=={release}")


def install_wheel(python: str, wheels: Path, target: Path, requirement: str, *, no_deps: bool = False) -> str | None:
    """Install `requirement` (with its own dependencies unless `no_deps`) from the wheelhouse into a fresh `target`,
    fetching into the wheelhouse first where it lacks a wheel: the one installer of every release child (the
    transformers releases here, bitsandbytes' in check_bnb_cpu.py); an error message or None."""
    args = ["install", "--quiet", "--no-index", "--find-links", str(wheels), "--target", str(target), requirement]
    if no_deps:
        args.insert(1, "--no-deps")
    if target.exists():
        shutil.rmtree(target)
    proc = _pip(python, *args)
    if proc.returncode == 0:
        return None
    error = _ensure_wheels(python, wheels, requirement, no_deps=no_deps)  # first time (or new dependency): fetch
    if error:
        return error
    shutil.rmtree(target, ignore_errors=True)
    proc = _pip(python, *args)
    return None if proc.returncode == 0 else f"pip install {requirement} failed: {_tail(proc.stderr)}"


def _installed_versions(target: Path) -> dict[str, str]:
    """The distributions pip put next to transformers (for the record: what the reading ran against)."""
    found: dict[str, str] = {}
    for info in target.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def release_child_env(env_dir: Path, cache: Path, *, site: tuple[Path, ...] = (),
                      extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that imports one throwaway release: only its folder (then the advisor, then
    `site`) on the path, no user site, offline, quiet, its own HF_HOME. `extra` adds variables (the acceptance
    children: OMP_NUM_THREADS)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(env_dir), str(REPO), *map(str, site)]),
        PYTHONNOUSERSITE="1",
        PYTHONWARNINGS="ignore",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
        **(extra or {}),
        HF_HOME=str(cache / "hf_home"),
    )
    return env


def read_release(release: str, *, python: str, cache: Path, refresh: bool, keep_env: bool) -> dict[str, Any]:
    """Install one release into a throwaway directory and read its table (cached in `cache/results`)."""
    result_path = cache / "results" / f"{release}.json"
    if result_path.exists() and not refresh:
        cached: dict[str, Any] = json.loads(result_path.read_text())
        if "table" in cached:  # failures are retried on every run
            log(f"{release}: cached")
            return cached
    env_dir = cache / "envs" / release
    started = time.monotonic()
    record: dict[str, Any] = {"release": release}
    marker = env_dir / ".installed-by-generate-attention-history"
    error = None if marker.exists() else _install(python, cache / "wheels", env_dir, release)
    if error:
        record["error"] = error
    else:
        marker.touch()
        record["packages"] = _installed_versions(env_dir)
        modeling_utils = env_dir / "transformers" / "modeling_utils.py"
        record["to_bettertransformer"] = "def to_bettertransformer" in modeling_utils.read_text()
        env = release_child_env(env_dir, cache)
        with tempfile.TemporaryDirectory() as cwd:  # nothing in the cwd may shadow the target's packages
            try:
                proc = subprocess.run(
                    [python, "-m", "advisor.knowledge.introspect"],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    env=env,
                    cwd=cwd,
                )
            except subprocess.TimeoutExpired:
                proc = None
        if proc is None:
            record["error"] = "reading the model classes timed out after 900 s"
        elif proc.returncode != 0:
            record["error"] = f"import/introspection failed: {_tail(proc.stderr)}"
        else:
            try:
                table = json.loads(proc.stdout)
            except json.JSONDecodeError as exc:
                table = {"unparseable": f"{exc}: {proc.stdout[:200]!r}"}
            if "unparseable" in table:
                record["error"] = f"introspection printed no JSON table: {table['unparseable']}"
            elif table.get("transformers") != release:
                record["error"] = f"read transformers {table.get('transformers')} instead of {release}"
            else:
                record["table"] = table
    if not keep_env:
        shutil.rmtree(env_dir, ignore_errors=True)
    record["seconds"] = round(time.monotonic() - started, 1)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(record, indent=1) + "\n")
    rows = len(record.get("table", {}).get("architectures", []))
    log(
        f"{release}: {'FAILED: ' + record['error'] if 'error' in record else f'{rows} architectures'}"
        f" ({record['seconds']} s)"
    )
    return record


def _bt_model_types(wheel_path: Path) -> list[str] | None:
    """`BetterTransformerManager.MODEL_MAPPING` keys in an optimum wheel; None without BetterTransformer."""
    with zipfile.ZipFile(wheel_path) as wheel:
        if BT_INIT not in wheel.namelist():
            return None
        tree = ast.parse(wheel.read(BT_INIT).decode())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "BetterTransformerManager":
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "MODEL_MAPPING" for t in stmt.targets)
                    and isinstance(stmt.value, ast.Dict)
                ):
                    return sorted(ast.literal_eval(key) for key in stmt.value.keys if key is not None)
    raise SystemExit(f"BetterTransformerManager.MODEL_MAPPING not found in {wheel_path.name}")


def read_bettertransformer(python: str, cache: Path, refresh: bool) -> dict[str, Any]:
    """Which model types optimum's BetterTransformer converted, read statically from optimum wheels.

    The list is the one of optimum 1.27.0 (the last 1.x). Earlier 1.x releases (the first of each minor
    from 1.13) are scanned too, because some types left the list before (optimum 1.16 refuses llama,
    falcon, gpt_bigcode, whisper: transformers' native SDPA took over); and optimum 2.0.0 is checked for
    the module's removal.
    """
    cached = cache / "results" / "bettertransformer.json"
    if cached.exists() and not refresh:
        return dict(json.loads(cached.read_text()))
    wheels = cache / "wheels"

    def wheel_for(version: str) -> Path:
        found = sorted(wheels.glob(f"optimum-{version}-*.whl"))
        if not found:
            error = _ensure_wheels(python, wheels, f"optimum=={version}", no_deps=True)
            found = sorted(wheels.glob(f"optimum-{version}-*.whl"))
            if not found:
                raise SystemExit(error or f"optimum {version} wheel not found after download")
        return found[0]

    first_of_minor: dict[tuple[int, int], Version] = {}
    for version in _index_versions(python, "optimum"):
        if Version(OPTIMUM_SCAN_FROM) <= version <= Version(OPTIMUM_BT_RELEASE):
            first_of_minor.setdefault((version.major, version.minor), version)
    scanned = [str(v) for v in sorted(first_of_minor.values())]
    if OPTIMUM_BT_RELEASE not in scanned:
        scanned.append(OPTIMUM_BT_RELEASE)
    lists = {name: _bt_model_types(wheel_for(name)) for name in scanned}
    model_types = lists[OPTIMUM_BT_RELEASE]
    if not model_types:
        raise SystemExit(f"optimum {OPTIMUM_BT_RELEASE} has no BetterTransformer")
    dropped: dict[str, str] = {}
    seen: set[str] = set()
    for name in scanned:
        current = set(lists[name] or ())
        for model_type in sorted(seen - current):
            dropped.setdefault(model_type, name)
        seen |= current
    removed = _bt_model_types(wheel_for(OPTIMUM_FIRST_WITHOUT_BT)) is None
    result = {
        "optimum": OPTIMUM_BT_RELEASE,
        "source": f"optimum {OPTIMUM_BT_RELEASE} wheel, {BT_INIT}: "
        "BetterTransformerManager.MODEL_MAPPING keys",
        "model_types": model_types,
        "dropped_earlier": {k: v for k, v in sorted(dropped.items()) if k not in model_types},
        "optimum_scanned": scanned,
        "optimum_removed_in": OPTIMUM_FIRST_WITHOUT_BT if removed else None,
    }
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run_length(values: list[str], releases: list[str]) -> list[list[str]]:
    """[[first_release, value], ...] for each change of `values` along `releases`."""
    runs: list[list[str]] = []
    for release, value in zip(releases, values):
        if not runs or runs[-1][1] != value:
            runs.append([release, value])
    return runs


def stored_records(path: Path) -> list[dict[str, Any]]:
    """The releases already in the output file as per-release records, so `--add` reads only the new release:
    each release's table is the stored flags (`AttentionHistory.table_at`), its packages the stored ones."""
    sys.path.insert(0, str(REPO))
    from advisor.knowledge.history import load_history

    history = load_history(path)
    last_with = history.bettertransformer.last_with.get("transformers")
    records = []
    for release in history.releases:
        table = history.table_at(release)
        records.append({
            "release": release,
            "packages": dict(history.packages.get(release, {})),
            "to_bettertransformer": last_with is not None and Version(release) <= Version(last_with),
            "table": {"source": f"stored: {history.source.split('(', 1)[-1].rstrip(')')}",
                      "architectures": [row.model_dump(by_alias=True) for row in table.architectures],
                      "skipped": [f"{name}: unreadable in the stored reading" for name in table.skipped]},
        })
    return records


def build_history(
    records: list[dict[str, Any]], bettertransformer: dict[str, Any], python: str
) -> dict[str, Any]:
    """Fold the per-release tables into one string of flags per (architecture, implementation)."""
    good = sorted((r for r in records if "table" in r), key=lambda r: Version(r["release"]))
    releases = [r["release"] for r in good]
    rows: dict[str, dict[str, dict[str, Any]]] = {}  # model_type -> release -> row
    unreadable: dict[str, set[str]] = {}  # model_type -> releases where its class could not be imported
    for record in good:
        release = record["release"]
        for row in record["table"]["architectures"]:
            rows.setdefault(row["model_type"], {})[release] = row
        for line in record["table"].get("skipped", []):
            model_type = line.split(":", 1)[0].strip()
            rows.setdefault(model_type, {})
            unreadable.setdefault(model_type, set()).add(release)
    architectures: dict[str, dict[str, Any]] = {}
    for model_type in sorted(rows):
        per_release = rows[model_type]
        entry: dict[str, Any] = {}
        classes = [per_release[r]["class"] if r in per_release else "" for r in releases]
        present = [c for c in classes if c]
        entry["class"] = present[-1] if present else None
        history = [run for run in _run_length(classes, releases) if run[1]]
        if len({name for _, name in history}) > 1:
            entry["class_history"] = history
        for impl in IMPLS:
            chars = []
            for release in releases:
                if release in per_release:
                    chars.append("1" if per_release[release][impl] else "0")
                elif release in unreadable.get(model_type, ()):
                    chars.append("?")
                else:
                    chars.append("-")
            entry[impl] = "".join(chars)
        architectures[model_type] = entry
    bt_releases = [r["release"] for r in good if r.get("to_bettertransformer")]
    no_bt = [r["release"] for r in good if not r.get("to_bettertransformer")]
    first_without = min(
        (r for r in no_bt if not bt_releases or Version(r) > Version(bt_releases[-1])),
        key=Version,
        default=None,
    )
    optimum_removed_in = bettertransformer.pop("optimum_removed_in")
    bettertransformer = {
        **bettertransformer,
        "removed_in": {"optimum": optimum_removed_in, "transformers": first_without},
        "last_with": {
            "optimum": OPTIMUM_BT_RELEASE,
            "transformers": bt_releases[-1] if bt_releases else None,
        },
        "note": "model.to_bettertransformer() exists in transformers releases before removed_in.transformers "
        "and needs optimum < removed_in.optimum; after that, SDPA (attn_implementation='sdpa') replaces it. "
        "The removal happened between last_with and removed_in (both checked: transformers by "
        "modeling_utils.py of each stored release, optimum by its wheel). "
        "dropped_earlier: types optimum stopped converting at that release (the first of its minor scanned), "
        "saying transformers' native SDPA replaces BetterTransformer for them.",
    }
    torch_version = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"], check=False, capture_output=True, text=True
    ).stdout.strip()
    first = good[0]["table"]["source"].split(":", 1)[1].strip() if good else ""
    return {
        "schema_version": 1,
        "description": "Attention implementations each architecture's class declares (its base model, else its "
        "first head class, see `class` / `class_history`), per transformers release. Each string has one "
        "character per entry of `releases`, in order: '1' declared supported, '0' declared unsupported, "
        "'-' model type absent from that release's auto mappings, '?' present but its "
        "class could not be imported there. 'eager' is always supported and not stored.",
        "generated_by": "python scripts/generate_attention_history.py",
        "source": "each release installed from PyPI with `pip install --target` and read by "
        f"`python -m advisor.knowledge.introspect` ({first})",
        "environment": {"python": sys.version.split()[0], "torch": torch_version},
        "releases": releases,
        "failures": {
            r["release"]: r["error"]
            for r in sorted(records, key=lambda r: Version(r["release"]))
            if "error" in r
        },
        "packages": {
            r["release"]: {
                k: v
                for k, v in sorted(r["packages"].items())
                if k in ("huggingface-hub", "tokenizers", "numpy", "safetensors")
            }
            for r in good
        },
        "architectures": architectures,
        "bettertransformer": bettertransformer,
    }


def dump(history: dict[str, Any], nested: tuple[str, ...] = ("architectures", "packages", "failures")) -> str:
    """JSON with one line per row of each `nested` table: small in bytes, still readable and diffable."""
    lines = ["{"]
    items = list(history.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if isinstance(value, dict) and key in nested and value:
            lines.append(f" {json.dumps(key)}: {{")
            inner = list(value.items())
            for j, (name, row) in enumerate(inner):
                sep = "," if j < len(inner) - 1 else ""
                lines.append(f"  {json.dumps(name)}: {json.dumps(row, separators=(', ', ': '))}{sep}")
            lines.append(f" }}{comma}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--releases", nargs="+", help="exact transformers releases (default: latest patch per minor)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="wheelhouse, results, envs")
    parser.add_argument("--jobs", type=int, default=2, help="releases installed and read at once (max 2)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with torch to read under")
    parser.add_argument(
        "--refresh", action="store_true", help="re-read releases already in the results cache"
    )
    parser.add_argument("--add", nargs="+", metavar="RELEASE",
                        help="read only these releases and keep every release already in --output as stored")
    parser.add_argument("--keep-envs", action="store_true", help="keep the per-release install directories")
    args = parser.parse_args(argv)

    cache: Path = args.cache_dir.resolve()
    (cache / "wheels").mkdir(parents=True, exist_ok=True)
    kept = stored_records(args.output if args.output.exists() else DEFAULT_OUTPUT) if args.add else []
    releases = args.add or args.releases or discover_releases(args.python)
    releases = sorted(dict.fromkeys(releases), key=Version)
    log(f"{len(releases)} releases: {' '.join(releases)}")
    jobs = max(1, min(args.jobs, 2))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        records = list(
            pool.map(
                lambda r: read_release(
                    r, python=args.python, cache=cache, refresh=args.refresh, keep_env=args.keep_envs
                ),
                releases,
            )
        )
    records = [r for r in kept if r["release"] not in releases] + records
    bettertransformer = read_bettertransformer(args.python, cache, args.refresh)
    history = build_history(records, bettertransformer, args.python)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dump(history))
    failed = [r["release"] for r in records if "error" in r]
    log(
        f"wrote {args.output} ({args.output.stat().st_size} bytes): {len(history['releases'])} releases, "
        f"{len(history['architectures'])} architectures, {len(failed)} failed {failed or ''}"
    )
    return 1 if failed and not history["releases"] else 0


if __name__ == "__main__":
    sys.exit(main())
