"""Regenerate data/model_analysis.json: the shipped models' parameter counts and attention flags, per release.

Usage (the one refresh command; docs/model-analysis.md):
    python scripts/precompute_models.py                       # every release already in the file + the installed one
    python scripts/precompute_models.py --releases 5.17.0 5.24.0 [--add]

Each release other than the installed one is installed with `pip install --no-deps --target DIR
transformers==X` (torch, tokenizers and huggingface_hub stay the installed ones) into a throwaway folder,
and this script runs itself under `PYTHONPATH=DIR` in `--emit` mode to count every shipped model on the meta
device and read its class's attention flags there. The answers are merged so each distinct value is stored
once with the list of releases it holds for. With this file, `advisor recommend/check` on a shipped model
neither builds it on the meta device nor imports transformers under any stored release (issue 14).

Counts are keyed by the hash of what they depend on (`advisor.model.analysis.count_key`) and stamped with
the counting code's version, so a changed `count_on_meta` ignores stale counts until this script runs again.
tests/unit/test_fast_path.py checks drift against the installed release.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from advisor.knowledge.installed import installed_version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.io import analysis_cache  # noqa: E402
from advisor.knowledge import data_dir, load_knowledge  # noqa: E402
from advisor.model.analysis import PRECOMPUTED_FILE, _version_key, count_key, counting_version  # noqa: E402


def emit() -> dict[str, Any]:
    """This interpreter's answers: count every shipped model on the meta device and read its class's flags."""
    from advisor.model.attention_support import _read_installed
    from advisor.model.meta import count_on_meta
    from advisor.model.param_formula import derive
    from advisor.model.resolve import describe_config

    counts: dict[str, list[Any]] = {}
    formulas: dict[str, dict[str, Any]] = {}
    support: dict[str, dict[str, bool]] = {}
    models: dict[str, dict[str, str | None]] = {}
    for shipped in load_knowledge(cache=False).models:  # no user cache: the answers are computed here
        config = dict(shipped.config)
        architectures = config.get("architectures") or []
        architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else None
        digest = analysis_cache.content_hash(count_key(config, architecture, False))
        counted = count_on_meta(copy.deepcopy(config), architecture, False)  # it may edit nested dicts
        if counted is None:
            raise SystemExit(f"{shipped.hub_id}: the meta-device build failed; is transformers installed?")
        counts[digest] = list(counted)
        formula = derive(config, architecture)  # counts for its relatives without transformers (issue 14)
        if formula is not None:
            formulas[shipped.hub_id] = formula
        spec = describe_config(config, name=shipped.hub_id, source="shipped", cache=False)
        flags = _read_installed(spec)
        support_key = analysis_cache.content_hash({"model_type": spec.model_type, "architecture": architecture})
        if flags is not None:
            support[support_key] = flags
        models[shipped.hub_id] = {"count_key": digest, "support_key": support_key if flags is not None else None}
    import transformers

    return {"transformers": transformers.__version__, "counting_version": counting_version(),
            "parameter_counts": counts, "attention_support": support, "models": models, "formulas": formulas}


_PROBE = "import transformers, torch\nfrom transformers import AutoConfig, LlamaForCausalLM\n"


def _pip_target(target: Path, requirement: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                           "--target", str(target), requirement], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip install {requirement} failed: {done.stderr.strip()[-800:]}")


def _install(release: str, folder: Path) -> Path:
    """transformers==release without its dependencies (torch, tokenizers, huggingface_hub stay the installed
    ones), plus what an older release needs that this environment lacks or has too new (httpx, a
    huggingface_hub in the release's pinned range), found by importing it in a child."""
    target = folder / f"transformers-{release}"
    if not (target / "transformers" / "__init__.py").is_file():
        _pip_target(target, f"transformers=={release}")
    env = {**os.environ, "PYTHONPATH": str(target)}
    for _ in range(12):
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return target
        pinned = re.search(r"ImportError: (\S+) is required for a normal functioning", done.stderr)
        missing = re.search(r"No module named '([A-Za-z0-9_]+)", done.stderr)
        if pinned is None and missing is None:
            return target  # the --emit run reports what is wrong
        _pip_target(target, pinned.group(1) if pinned else missing.group(1).replace("_", "-"))  # type: ignore[union-attr]
    return target


def _answers_for(release: str, folder: Path) -> dict[str, Any]:
    """Run `--emit` for `release`: here when it is the installed one, else under its throwaway install."""
    env = {**os.environ, analysis_cache.NO_CACHE_ENV: "1"}
    if release != installed_version():
        env["PYTHONPATH"] = os.pathsep.join([str(_install(release, folder)), str(ROOT)])
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--emit"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"transformers {release}: {done.stderr.strip()[-1500:]}")
    answers: dict[str, Any] = json.loads(done.stdout)
    if answers["transformers"] != release:
        raise SystemExit(f"asked for transformers {release}, the child imported {answers['transformers']}")
    return answers


def merge(per_release: list[dict[str, Any]]) -> dict[str, Any]:
    """One table: each distinct value stored once per key, with the releases it holds for (oldest first)."""
    per_release = sorted(per_release, key=lambda a: _version_key(a["transformers"]))
    stamps = {a["counting_version"] for a in per_release}
    if len(stamps) != 1:
        raise SystemExit(f"the releases were counted by different counting code: {sorted(stamps)}")

    def dedupe(field: str) -> dict[str, list[dict[str, Any]]]:
        table: dict[str, dict[str, dict[str, Any]]] = {}
        for answers in per_release:
            for digest, value in answers[field].items():
                slot = table.setdefault(digest, {}).setdefault(json.dumps(value, sort_keys=True), {"releases": [], "value": value})
                slot["releases"].append(answers["transformers"])
        return {digest: list(values.values()) for digest, values in sorted(table.items())}

    models: dict[str, dict[str, Any]] = {}
    for answers in per_release:
        for hub_id, keys in answers["models"].items():
            models.setdefault(hub_id, {"count_key": keys["count_key"], "support_key": keys["support_key"]})
            if keys["support_key"] is not None:
                models[hub_id]["support_key"] = keys["support_key"]
    return {
        "schema_version": 2,
        "generated_by": "scripts/precompute_models.py",
        "refresh": "python scripts/precompute_models.py",
        "counting_version": stamps.pop(),
        "releases": [a["transformers"] for a in per_release],
        "parameter_counts": dedupe("parameter_counts"),
        "attention_support": dedupe("attention_support"),
        "formulas": dedupe("formulas"),
        "models": dict(sorted(models.items())),
    }


def _current_releases(out: Path) -> list[str]:
    try:
        stored = json.loads(out.read_text(encoding="utf-8")).get("releases")
    except (OSError, ValueError):
        return []
    return [r for r in stored if isinstance(r, str)] if isinstance(stored, list) else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", nargs="+", help="transformers releases to store (default: those stored + installed)")
    parser.add_argument("--add", action="store_true", help="keep the releases already stored as well")
    parser.add_argument("--work", type=Path, help="folder for the throwaway installs (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=2, help="releases analysed at once")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        print(json.dumps(emit()))
        return
    out = data_dir() / PRECOMPUTED_FILE
    installed = installed_version()
    releases = list(args.releases or [])
    if args.add or not releases:
        releases += _current_releases(out)
    if not args.releases and installed:
        releases.append(installed)
    releases = sorted(set(releases), key=_version_key)
    if not releases:
        raise SystemExit("no release to analyse: install transformers or pass --releases")
    work = args.work or Path(tempfile.mkdtemp(prefix="advisor-precompute-"))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        per_release = list(pool.map(lambda r: _answers_for(r, work), releases))
    table = merge(per_release)
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(table['models'])} models, transformers {', '.join(table['releases'])})")


if __name__ == "__main__":
    main()
