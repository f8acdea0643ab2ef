#!/usr/bin/env python
"""Build `data/hub_kernels.json`: each transformers release's Hub-kernel mapping, executed, and the kernel layers
of every shipped model under it.

Why: from 5.25 `from_pretrained` kernelizes by default (`use_kernels=None` means True), and from 4.53 a user may
ask for it (`use_kernels=True`). Which Hub repositories a load then needs depends on the release's mapping
(`integrations/hub_kernels.py`, layer name -> device -> mode -> repository and version) and on which of those
layers the model really has. The planner must answer both for a target whose release is not installed here
(`--env` snapshot, `--assume transformers==X`), and for a shipped model without importing transformers.

How: for each stored release whose from_pretrained reads `use_kernels` (data/release_constraints.json
`use_kernels_default` not null: 4.53.3 onwards), `pip install --target DIR transformers==X kernels<its extra's
range>` with their own dependencies (never torch: the installed one is used), then run
`python -m advisor.model.layers_worker` under `PYTHONPATH=DIR:<repo>`, which executes the mapping
(`get_kernel_mapping_transformers()`, or the module's `_KERNEL_MAPPING` in older releases) and builds every
shipped model on the meta device to read its kernel layers (`use_kernel_forward_from_hub` classes and
`use_kernelized_func` functions). A release whose install or import fails is recorded with its error: its
mapping is then unknown, never another release's.

    python scripts/generate_hub_kernels.py                     # every release with a use_kernels keyword
    python scripts/generate_hub_kernels.py --releases 5.25.0   # some releases (the others are kept)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advisor.io import analysis_cache
from advisor.knowledge import load_knowledge
from advisor.knowledge.releases import load_release_constraints
from advisor.model.analysis import count_key

OUTPUT = REPO / "data" / "hub_kernels.json"
DEFAULT_CACHE = REPO / ".dev" / "hub_kernels"
WHEELS = Path.home() / ".cache" / "advisor" / "transformers-wheels"
_REQUIRES = re.compile(r"^Requires-Dist:\s*kernels\s*([^;]*)")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _tail(text: str, lines: int = 4) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-600:]


def kernels_requirement(release: str) -> str:
    """The `kernels` range the release's own extras declare (METADATA), e.g. `kernels<0.20,>=0.19.1`."""
    wheel = WHEELS / f"transformers-{release}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(WHEELS),
                        f"transformers=={release}"], check=True, capture_output=True)
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        for line in zf.read(name).decode("utf-8").splitlines():
            m = _REQUIRES.match(line)
            if m:
                return "kernels" + m.group(1).replace(" ", "")
    return "kernels"


def install(release: str, target: Path, wheels: Path) -> str | None:
    """transformers==release and the kernels its extras name, with their dependencies but never torch; an error."""
    requirements = [f"transformers=={release}", kernels_requirement(release)]
    shutil.rmtree(target, ignore_errors=True)
    for attempt in ("cached", "download"):
        args = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--target",
                str(target), "--find-links", str(wheels), *requirements]
        if attempt == "cached":
            args.insert(5, "--no-index")
        else:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--prefer-binary", "--dest",
                            str(wheels), *requirements], check=False, capture_output=True, text=True, timeout=900)
        proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=900)
        if proc.returncode == 0:
            # torch comes from the advisor's environment: a copy pulled in by a dependency would shadow it
            for stray in target.glob("torch*"):
                shutil.rmtree(stray, ignore_errors=True)
            return None
        shutil.rmtree(target, ignore_errors=True)
    return f"pip install {' '.join(requirements)} failed: {_tail(proc.stderr)}"


def shipped_requests() -> list[dict[str, Any]]:
    """Every shipped model, keyed as advisor.model.analysis keys its counts (the same config digest)."""
    requests = []
    for shipped in load_knowledge().models:
        config = dict(shipped.config)
        architectures = config.get("architectures") or []
        architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else None
        key = analysis_cache.content_hash(count_key(config, architecture, False))
        requests.append({"key": key, "hub_id": shipped.hub_id, "config": config, "architecture": architecture})
    return requests


def read(release: str, cache: Path, requests: list[dict[str, Any]]) -> dict[str, Any]:
    target = cache / "envs" / release
    error = install(release, target, cache / "wheels")
    if error:
        return {"error": error}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "TRANSFORMERS_", "USE_HUB"))}
    env.update(PYTHONPATH=os.pathsep.join([str(target), str(REPO)]), PYTHONNOUSERSITE="1", PYTHONWARNINGS="ignore",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               HF_HOME=str(cache / "hf_home"))
    payload = json.dumps([{k: r[k] for k in ("key", "config", "architecture")} for r in requests])
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the cwd may shadow the target's packages
        try:
            proc = subprocess.run([sys.executable, "-m", "advisor.model.layers_worker"], input=payload,
                                  capture_output=True, text=True, env=env, cwd=cwd, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            return {"error": "reading the release timed out after 900 s"}
    shutil.rmtree(target, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": f"layers_worker exited {proc.returncode}: {_tail(proc.stderr)}"}
    answer: dict[str, Any] = json.loads(proc.stdout)
    if answer.get("transformers") != release:
        return {"error": f"read transformers {answer.get('transformers')}, not {release}"}
    return answer


def build(releases: list[str], cache: Path, previous: dict[str, Any]) -> dict[str, Any]:
    requests = shipped_requests()
    answers: dict[str, dict[str, Any]] = {}
    for release in releases:
        started = time.monotonic()
        answers[release] = read(release, cache, requests)
        note = answers[release].get("error") or f"kernels {answers[release].get('kernels')}, " \
            f"{len(answers[release].get('mapping') or {})} mapped layers"
        log(f"{release}: {note} ({time.monotonic() - started:.0f} s)")
    # keep what an earlier run read for releases not read now
    read_before = {r: row for r, row in previous.get("read", {}).items() if r not in answers}
    mappings: dict[str, Any] = dict(previous.get("mappings", {}))
    read_rows: dict[str, Any] = dict(read_before)
    models: dict[str, Any] = {k: dict(v) for k, v in previous.get("models", {}).items()}
    for release, answer in answers.items():
        if "error" in answer:
            read_rows[release] = {"kernels": None, "mapping": None, "error": answer["error"]}
            continue
        mapping = answer.get("mapping")
        mapping_id = None
        if mapping is not None:
            mapping_id = analysis_cache.content_hash(mapping)[:16]
            mappings[mapping_id] = mapping
        read_rows[release] = {"kernels": answer.get("kernels"), "mapping": mapping_id, "error": None}
        for item in requests:
            row = models.setdefault(item["key"], {"hub_id": item["hub_id"], "layers": {}})
            row["hub_id"] = item["hub_id"]
            row["layers"][release] = answer["layers"].get(item["key"])
    used = {row["mapping"] for row in read_rows.values() if row.get("mapping")}
    order = sorted(read_rows, key=Version)
    return {
        "schema_version": 1,
        "description": (
            "Per transformers release whose from_pretrained reads `use_kernels`: the Hub-kernel mapping its "
            "integrations/hub_kernels.py executes (layer name -> device -> mode -> repository; a device "
            "`cuda[121-121]` is limited to those compute capabilities, mode ANY is kernels' FALLBACK), and the "
            "kernel layers each shipped model has under it. Identical mappings are stored once under `mappings`. "
            "A release whose reading failed has `error` and no mapping: unknown, never another release's."
        ),
        "generated_by": "python scripts/generate_hub_kernels.py",
        "source": "each release installed from PyPI with `pip install --target` (with the kernels its extras name) "
                  "and read by `python -m advisor.model.layers_worker` (executed, meta-device builds)",
        "releases": order,
        "read": {r: read_rows[r] for r in order},
        "mappings": {k: mappings[k] for k in sorted(used)},
        "models": {k: {"hub_id": v["hub_id"], "layers": {r: v["layers"][r] for r in sorted(v["layers"], key=Version)}}
                   for k, v in sorted(models.items(), key=lambda kv: kv[1]["hub_id"])},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--releases", nargs="*", help="only these releases (the others already stored are kept)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="wheelhouse and throwaway installs")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    rc = load_release_constraints()
    with_keyword = [r for r in rc.releases if (run := rc.at("use_kernels_default", r)) is not None
                    and run.value is not None]
    releases = args.releases or with_keyword
    previous = json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() and args.releases else {}
    (args.cache / "wheels").mkdir(parents=True, exist_ok=True)
    data = build(releases, args.cache, previous)
    args.output.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    failed = [r for r, row in data["read"].items() if row.get("error")]
    log(f"wrote {args.output}: {len(data['read'])} releases, {len(data['mappings'])} distinct mappings"
        + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
