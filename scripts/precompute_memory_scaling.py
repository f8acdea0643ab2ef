"""Regenerate data/memory_scaling.json (and its exponents, memory_scaling_runs.json): how each shipped memory formula
scales to the model's relatives (issue 27).

Usage (after scripts/precompute_memory.py, for the same transformers release; entries of other formulas already in the file are kept):
    python scripts/precompute_memory_scaling.py [--processes 2] [--only HUB_ID ...] [--variant DTYPE/ATTN/QUANT ...]

Every shipped formula at the planner's shape (scripts/precompute_memory.py's COVERAGE on every target) is fitted
again with each size field of the model's parameter formula (data/model_analysis.json) doubled or halved, then
checked at every free field tripled (advisor.estimate.formula_scaling.derive). A formula whose check fails is
printed and nothing stored for it: its relatives are simulated, as before.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from precompute_memory import ALL_BACKENDS, PLANNED, _jobs  # noqa: E402

from advisor.estimate import formula_scaling, formula_store  # noqa: E402
from advisor.estimate.adapter import _simulator_stamp  # noqa: E402
from advisor.estimate.simulate import _GEN_SUFFIXES  # noqa: E402
from advisor.estimate.trace_formula import applies  # noqa: E402
from advisor.io import analysis_cache  # noqa: E402
from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.knowledge.memory_tables import SCALING_FILE, SCALING_RUNS_FILE  # noqa: E402
from advisor.model.analysis import _release_value, precomputed  # noqa: E402
from advisor.model.param_formula import IGNORED  # noqa: E402
from advisor.model.resolve import describe_config  # noqa: E402
from advisor.plan.recommend import default_seq_len  # noqa: E402


def _size_fields(hub_id: str, release: str) -> list[str]:
    """The fields the model's parameter formula scales parameters by (nonzero exponents), sorted."""
    formula = _release_value(precomputed().get("formulas", {}).get(hub_id), release, nearest=True)
    if not isinstance(formula, dict):
        return []
    found = {f for group in formula.get("groups", []) for exps in (group[5], *group[6]) for f in exps}
    return sorted(found & set(formula.get("free", {})))


def _entries(hub_id: str, variants: list[str] | None = None) -> list[dict[str, Any]]:
    import transformers

    shipped = next(m for m in load_knowledge().models if m.hub_id == hub_id)
    config = dict(shipped.config)
    architecture = (config.get("architectures") or [None])[0]
    generative = bool(architecture and architecture.endswith(_GEN_SUFFIXES))
    spec = describe_config(config, name=hub_id, source="shipped")
    fields = _size_fields(hub_id, transformers.__version__)
    layer_field = next((k for k in formula_scaling._LAYER_KEYS if isinstance(config.get(k), int)), None)
    stamp = _simulator_stamp()
    out = []
    for (dtype, attn, quantization), workload, (device, capability) in _jobs(hub_id, generative):
        if workload != PLANNED or not fields or (variants is not None and
                                                 f"{dtype}/{attn}/{quantization}" not in variants):
            continue
        prompt = default_seq_len(spec, None)
        inputs = {"architecture": architecture, "dtype": dtype, "attn": attn, "quantization": quantization,
                  "padded": False, "device": device, "capability": capability, "sdpa_backends": ALL_BACKENDS}
        key = formula_store.formula_key(copy.deepcopy(config), inputs)
        digest = analysis_cache.content_hash(key)
        base = next((f for f in formula_store.shipped_formulas(stamp, digest) if applies(f, config, 1, prompt, prompt)),
                    None)
        what = f"{hub_id} {dtype}/{attn} {device}{capability}"
        if base is None:
            print(f"  {what}: no shipped formula at the planner's shape", flush=True)
            continue

        def fit(other: dict[str, Any], key: dict[str, Any] = key) -> Any:
            return formula_store.fit_one({**key, "config": copy.deepcopy(other)}, architecture=architecture,
                                         batch=1, prompt=prompt, seq_len=prompt, generative=generative)

        start = time.perf_counter()
        entry = formula_scaling.derive(copy.deepcopy(config), base, fit, fields, layer_field=layer_field)
        if entry is None:
            print(f"  {what}: no scaling ({time.perf_counter() - start:.1f} s)", flush=True)
            continue
        print(f"  {what}: free {sorted(entry['free'])} ({time.perf_counter() - start:.1f} s)", flush=True)
        out.append({"hub_id": hub_id, "base": digest, "region": base.region.model_dump(mode="json"),
                    "inputs": json.loads(json.dumps({k: v for k, v in key.items() if k != "config"})),
                    "config": {k: v for k, v in config.items() if k not in IGNORED}, **entry})
    return out


def _pooled(entries: list[dict[str, Any]], pool: dict[str, Any]) -> list[dict[str, Any]]:
    """Each entry's exponent runs stored once in `pool`, named by content hash."""
    out = []
    for entry in entries:
        names = []
        for run in entry["exponents"]:
            name = run if isinstance(run, str) else analysis_cache.content_hash(run)[:20]
            if not isinstance(run, str):
                pool.setdefault(name, run)
            names.append(name)
        out.append({**entry, "exponents": names})
    return out


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "data" / SCALING_FILE,
                        help=f"the entries; the exponents go to {SCALING_RUNS_FILE} beside it")
    parser.add_argument("--only", nargs="*", default=None, help="these shipped models (hub ids) only, merged")
    parser.add_argument("--variant", nargs="*", default=None, help="these DTYPE/ATTN/QUANTIZATION only")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    runs_out = args.out.with_name(SCALING_RUNS_FILE)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    old_runs = json.loads(runs_out.read_text()) if runs_out.is_file() else {}
    stamp = _simulator_stamp()
    current = old.get("simulator") == stamp and old_runs.get("simulator") == stamp
    releases = old.get("releases", {}) if current else {}
    pool: dict[str, Any] = dict(old_runs.get("runs", {})) if current else {}
    models = [m.hub_id for m in load_knowledge().models if args.only is None or m.hub_id in args.only]
    with multiprocessing.get_context("fork").Pool(args.processes) as workers:
        entries = [e for found in workers.imap(functools.partial(_entries, variants=args.variant), models)
                   for e in found]
    version = transformers.__version__
    done = {(e["base"], json.dumps(e["region"], sort_keys=True)) for e in entries}
    kept = [e for e in releases.get(version, []) if (e["base"], json.dumps(e["region"], sort_keys=True)) not in done]
    releases[version] = [*kept, *_pooled(entries, pool)]
    named = {n for rows in releases.values() for e in rows for n in e["exponents"]}
    data = {"generated_by": "scripts/precompute_memory_scaling.py", "simulator": stamp, "releases": releases}
    args.out.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    pooled = {"generated_by": "scripts/precompute_memory_scaling.py", "simulator": stamp,
              "runs": {n: r for n, r in pool.items() if n in named}}
    runs_out.write_text(json.dumps(pooled, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{args.out}: {len(entries)} scalings for transformers {version}")


if __name__ == "__main__":
    main()
