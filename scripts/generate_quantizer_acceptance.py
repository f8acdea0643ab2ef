#!/usr/bin/env python
"""Build `data/quantizer_acceptance.json`: what each stored transformers release's quantizers do, executed.

Per release: its quantizer code is hashed from the wheel (every file under `transformers/quantizers/` and
`utils/quantization_config.py`); one release per distinct content is installed (`pip install --target`, the
machinery and wheelhouse of `generate_acceptance.py`: `_install`, `_child_env`, `hub_floor`) and
`python -m advisor.knowledge.quantizer_run` runs in a child whose importable transformers is that release: each
method's typical `quantization_config` through the release's own `get_hf_quantizer` / `from_config` /
`validate_environment` / `update_dtype`, under every target condition (no CUDA, compute capability 7.5, 8.0, 8.9,
9.0; every package present, then each absent alone). The conditions are faked inside the child (torch.cuda and the
release's `is_*_available`, `importlib.metadata`, stub packages for libraries not installed here): the release's
own code executed under a target's conditions, as the acceptance generator does for the flash packages. A release
whose quantizer content equals an executed one shares its rows, exactly (the content is the same code); 4.36 and
4.37 have no `quantizers/` package (quantization was inline in modeling_utils) and are recorded as not executed.

    nice -n 19 python scripts/generate_quantizer_acceptance.py             # every stored release
    nice -n 19 python scripts/generate_quantizer_acceptance.py --releases 4.57.6 5.25.0

Resume-friendly: a child's raw result is cached under `<cache>/quantizer-results/`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
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
sys.path.insert(0, str(REPO / "scripts"))

import generate_acceptance as ga  # noqa: E402  (the release-child machinery)
import generate_attention_history as gah  # noqa: E402

from advisor.knowledge.quantizer_acceptance import compact_case  # noqa: E402
from advisor.knowledge.quantizer_run import CASES, DEVICES, METHODS, STUB_VERSIONS  # noqa: E402

DEFAULT_OUTPUT = REPO / "data" / "quantizer_acceptance.json"
# The acceptance generator's cache (its wheelhouse holds every stored release and the hubs they need).
DEFAULT_CACHE = REPO / ".dev" / "quantizers"  # wheels: a link to the acceptance wheelhouse


def content_key(wheels: Path, release: str) -> tuple[str, dict[str, str]]:
    """The digest of the release's quantizer code, and each quantizer file's own digest (for the citations)."""
    wheel = sorted(wheels.glob(f"transformers-{release}-*.whl"))[0]
    total = hashlib.sha256()
    files = {}
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if name.startswith("transformers/quantizers/") or name == "transformers/utils/quantization_config.py":
                data = z.read(name)
                total.update(name.encode() + b"\0" + data)
                files[name] = hashlib.sha256(data).hexdigest()[:16]
    return total.hexdigest()[:16], files


ACCEPTANCE_RESULTS = Path("/work/wt28/.dev/acceptance/results")  # generate_acceptance.py's record of each env


def _extract(wheels: Path, target: Path, release: str) -> str | None:
    """The environment `generate_acceptance.py` installed for this release (its recorded package versions),
    unpacked from the same wheelhouse without pip (a wheel is a zip: seconds instead of a resolve and a byte
    compile); None when done, else why not (then `_install` resolves it)."""
    record = ACCEPTANCE_RESULTS / f"{release}.json"
    if not record.is_file():
        return "no acceptance record"
    packages = json.loads(record.read_text()).get("packages") or {}
    if packages.get("transformers") != release:
        return "no package list"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, version in packages.items():
        stem = f"{name.replace('-', '_')}-{version}-"
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if not found:
            shutil.rmtree(target, ignore_errors=True)
            return f"no wheel for {name}=={version}"
        with zipfile.ZipFile(found[0]) as z:
            z.extractall(target)
    return None


def run_release(release: str, *, python: str, cache: Path, timeout: int) -> dict[str, Any]:
    """Install one release and run the quantizer child (the raw result, cached)."""
    result_path = cache / "quantizer-results" / f"{release}.json"
    if result_path.exists():
        gah.log(f"{release}: cached child result")
        return dict(json.loads(result_path.read_text()))
    env_dir = cache / "envs" / f"q-{release}"
    started = time.monotonic()
    record: dict[str, Any] = {"release": release}
    error = _extract(cache / "wheels", env_dir, release) and ga._install(python, cache / "wheels", env_dir, release)
    if error:
        record["error"] = error
    else:
        record["packages"] = gah._installed_versions(env_dir)
        with tempfile.TemporaryDirectory() as cwd:
            try:
                proc = subprocess.run(["nice", "-n", "19", python, "-S", "-m", "advisor.knowledge.quantizer_run"],
                                      check=False, capture_output=True, text=True, timeout=timeout,
                                      env=ga._child_env(env_dir, cache), cwd=cwd)
            except subprocess.TimeoutExpired:
                proc = None
        if proc is None:
            record["error"] = f"the quantizer child timed out after {timeout} s"
        elif proc.returncode != 0:
            record["error"] = f"the quantizer child failed: {gah._tail(proc.stderr)}"
        else:
            record.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            if record.get("transformers") != release:
                record["error"] = f"ran transformers {record.get('transformers')} instead of {release}"
    shutil.rmtree(env_dir, ignore_errors=True)
    record["seconds"] = round(time.monotonic() - started, 1)
    if "error" not in record:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(record) + "\n")
    gah.log(f"{release}: {record.get('error') or str(len(record.get('rows', []))) + ' cases'} ({record['seconds']} s)")
    return record


def build(records: dict[str, dict[str, Any]], groups: dict[str, list[str]], files: dict[str, dict[str, str]],
          wheels: Path, python: str) -> dict[str, Any]:
    """The committed table: per executed content, per method, one line per case; releases point to it."""
    torch_version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], check=False,
                                   capture_output=True, text=True).stdout.strip()
    executed: dict[str, Any] = {}
    releases: dict[str, Any] = {}
    case_sets: dict[str, list[list[Any]]] = {}  # one copy of each distinct list of cases (most repeat over releases)

    messages: list[str] = []  # each detail once; a case holds its index

    def message(text: str | None) -> int | None:
        if text is None:
            return None
        text = text if len(text) <= 240 else text[:239] + "…"
        if text not in messages:
            messages.append(text)
        return messages.index(text)

    def case_set(method: str, lines: list[list[Any]]) -> str:
        lines = [[*line[:3], message(line[3]), *line[4:]] for line in lines]
        for key, stored in case_sets.items():
            if key.startswith(method + "/") and stored == lines:
                return key
        key = f"{method}/{sum(k.startswith(method + '/') for k in case_sets) + 1}"
        case_sets[key] = lines
        return key

    for key, members in groups.items():
        ran = members[-1]
        record = records.get(ran)
        for release in members:
            releases[release] = {"content": key, "executed_as": ran, "wheel": ga._wheel(wheels, release)}
        if record is None or "error" in record:
            executed[key] = {"release": ran, "error": (record or {}).get("error", "not run")}
            continue
        if record.get("no_quantizers"):
            executed[key] = {"release": ran, "no_quantizers": True}
            continue
        methods: dict[str, Any] = {}
        for method in METHODS:
            rows = [r for r in record["rows"] if r["method"] == method]
            quantizer = next((r["quantizer"] for r in rows if r.get("quantizer")), None)
            methods[method] = {"quantizer": quantizer, "sha256": files[ran].get(quantizer or "", None),
                               "cases": case_set(method, [compact_case(r) for r in rows])}
        executed[key] = {"release": ran, "seconds": record.get("seconds"),
                         "packages": {k: v for k, v in sorted(record.get("packages", {}).items())
                                      if k in ("huggingface-hub", "tokenizers", "safetensors")},
                         "methods": methods}
    return {
        "schema_version": 1,
        "description": (
            "What each stored transformers release's quantizers do with a method's typical quantization_config, "
            "executed (issue 28: execute, do not read): in a child whose importable transformers is the release, "
            "the release's get_hf_quantizer (or, before it, supports_quant_method / merge_quantization_configs / "
            "AutoHfQuantizer.from_config) and validate_environment, then update_dtype (update_torch_dtype before "
            "4.56) for a requested bfloat16 and for none. Conditions are faked in the child, the code is the "
            "release's: CUDA absent ('cpu') or present at a compute capability, each package present (at "
            "`stub_versions`; a stub module where it is not installed here) or absent (its is_*_available False, "
            "importlib.metadata raising). Verdicts: accepted | refused (exception: first line; raised_at: the "
            "release's file:line) | dequantizes (the quantizer set dequantize: the load works at the unquantized "
            "size, with the warning) | undecided (a stub's answer did not suffice, or the library's own check). "
            "Releases whose quantizers/ and utils/quantization_config.py are byte-identical share one execution "
            "(`releases[v].content`); `executed[content].methods[m].cases` names a list of `case_sets` (one copy of "
            "each distinct list); a case's detail is an index into `messages`."),
        "generated_by": "nice -n 19 python scripts/generate_quantizer_acceptance.py",
        "environment": {"python": sys.version.split()[0], "torch": torch_version, "machine": "x86-64 CPU"},
        "devices": list(DEVICES),
        "stub_versions": STUB_VERSIONS,
        "methods": {m: {"pre_quantized": s["pre_quantized"], "packages": s["packages"], "config": s["config"]}
                    for m, s in METHODS.items()},
        "case_columns": ["device", "absent", "verdict", "detail", "raised_at", "dtype_for_bfloat16",
                         "dtype_for_none"],
        # install + run per executed release, summed (a rerun over cached results costs seconds, not this)
        "seconds": round(sum(r.get("seconds") or 0 for r in records.values()), 1),
        "releases": releases,
        "executed": executed,
        "case_sets": case_sets,
        "messages": messages,
    }


def dump(data: dict[str, Any]) -> str:
    """Indented JSON with one line per case (and per release entry), as the other generated tables."""
    lines: dict[str, str] = {}

    def mark(value: Any) -> Any:
        token = f"@@{len(lines)}@@"
        lines[token] = json.dumps(value, ensure_ascii=False)
        return token

    shaped = copy.deepcopy(data)
    shaped["releases"] = {r: mark(e) for r, e in shaped["releases"].items()}
    shaped["executed"] = {k: mark(e) for k, e in shaped["executed"].items()}
    shaped["case_sets"] = {k: [mark(c) for c in cases] for k, cases in shaped["case_sets"].items()}
    shaped["messages"] = [mark(m) for m in shaped["messages"]]
    out = json.dumps(shaped, indent=1, ensure_ascii=False)
    for token, text in lines.items():
        out = out.replace(json.dumps(token), text)
    return out + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", help="releases to run (default: every stored release)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)
    cache = args.cache_dir.resolve()
    if not (cache / "site").is_dir():
        ga._shadow_site(args.python, cache)
    wheels = cache / "wheels"
    releases = sorted(dict.fromkeys(args.releases or ga.stored_releases()), key=Version)
    groups: dict[str, list[str]] = {}
    files: dict[str, dict[str, str]] = {}
    for release in releases:
        key, digests = content_key(wheels, release)
        groups.setdefault(key, []).append(release)
        files[release] = digests
    gah.log(f"{len(releases)} releases, {len(groups)} distinct quantizer contents")
    records = {}
    for members in groups.values():
        ran = members[-1]  # the newest release of the content stands for it
        records[ran] = run_release(ran, python=args.python, cache=cache, timeout=args.timeout)
    data = build(records, groups, files, wheels, args.python)
    args.output.write_text(dump(data))
    failed = [r for r, rec in records.items() if "error" in rec]
    gah.log(f"wrote {args.output}: {sum(len(CASES(m)) for m in METHODS)} cases per release, "
            f"{len(records) - len(failed)} executed, failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
