"""Regenerate data/memory_formulas.json: exact memory formulas for shipped models (issue 27), per release.

Usage (after any change to advisor/estimate/, whose stamp the file carries; run once per transformers release):
    python scripts/precompute_memory.py                                  # the installed transformers
    PYTHONPATH=/tmp/advisor-transformers-5.17.0 python scripts/precompute_memory.py   # another release

Each (shipped model, configuration, workload) below, and the planner's own shape (batch 1, a prefill of the
default length: one formula for every --seq-len of `recommend`/`check` at batch 1), gets the formula of its
workload's region, fitted on the simulator's allocation trace and proved on held-out shapes
(advisor.estimate.trace_formula); a refusal is printed and nothing stored. At the planner's shape every shipped
model gets every configuration the planner prints (COVERAGE: sdpa, eager and the fused class, in bfloat16, float16
and float32; BNB_COVERAGE on GPUs: bitsandbytes 8-bit and 4-bit in bfloat16 and float16) on each capability class
of the GPU table's main cards (MAIN_GPUS) and on the CPU, so a candidate of a shipped model on those targets prints
the simulator's figure (issue 27).

A formula's runs (its traces) repeat across targets and releases (the same ops on an A100 and an H100, whose
cuBLAS workspace the formula's capability gives): each distinct run is stored once, under "runs" by its content
hash, in memory_formulas_runs.json beside the table, and a formula names its runs by hash
(advisor.estimate.formula_store resolves them; the table alone is read to find a key). With the file, `recommend`/`check` on a shipped model at any shape of a stored region
print the simulator's figure without importing torch or transformers. Releases already in the file are kept.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.estimate import formula_store  # noqa: E402
from advisor.estimate.adapter import _simulator_stamp  # noqa: E402
from advisor.estimate.simulate import _GEN_SUFFIXES, capability_class  # noqa: E402
from advisor.io import analysis_cache  # noqa: E402
from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.knowledge.memory_tables import FORMULA_RUNS_FILE, QUANTIZED_RUNS_FILE  # noqa: E402
from advisor.model.resolve import describe_config  # noqa: E402
from advisor.plan.recommend import default_seq_len  # noqa: E402

H100 = ("cuda", (9, 0))
MAIN_GPUS = ("H100", "A100-80GB", "L4", "A10", "T4")  # their capability classes (9.0; 8.0 for 8.0, 8.6, 8.9; 7.0)
ALL_BACKENDS = ("flash", "efficient", "math")
# (batch, prompt, new tokens, padded): `advisor bench`'s workloads (advisor.bench.WORKLOADS) and BERT's
WORKLOADS = [(1, 32, 64, False), (1, 4096, 2, False), (16, 512, 64, True)]
PLANNED = (1, None, 0, False)  # recommend's and check's own shape: batch 1, a prefill of the default length (s == p)
ENCODER = [(32, 128, 0, False)]
EVERY_MODEL = [("bfloat16", "sdpa", "none")]
# the models the committed `advisor bench` runs measured, in every configuration they measured
MEASURED = {
    "meta-llama/Llama-3.2-1B": [("bfloat16", "sdpa", "none"), ("bfloat16", "eager", "none"), ("float16", "sdpa", "none"),
                                ("float32", "sdpa", "none"), ("bfloat16", "flex_attention", "none"),
                                ("bfloat16", "sdpa", "4bit"), ("bfloat16", "sdpa", "8bit")],
    "meta-llama/Meta-Llama-3-8B": [("bfloat16", "sdpa", "none"), ("bfloat16", "eager", "none"),
                                   ("float32", "sdpa", "none"), ("bfloat16", "sdpa", "4bit"),
                                   ("bfloat16", "sdpa", "8bit")],
    "google-bert/bert-base-uncased": [(d, a, "none") for d in ("bfloat16", "float16", "float32")
                                      for a in ("sdpa", "eager")],
}
ARCHITECTURES = {"google-bert/bert-base-uncased": ["BertForMaskedLM", "BertModel"]}  # BertModel: the bench's
# what `recommend`/`check` print for any shipped model (their alternatives included): attention classes x dtypes,
# and on a GPU with bitsandbytes its 8-bit and 4-bit (NF4) loads in the two half-precision compute dtypes
COVERAGE = [(d, a, "none") for a in ("sdpa", "eager", "flex_attention") for d in ("bfloat16", "float16", "float32")]
BNB_COVERAGE = [(d, a, q) for q in ("8bit", "4bit") for a in ("sdpa", "eager", "flex_attention")
                for d in ("bfloat16", "float16")]


def _targets() -> list[tuple[str, tuple[int, int]]]:
    """The capability classes of MAIN_GPUS, then the CPU."""
    from advisor.facts import ComputeCapability

    knowledge = load_knowledge()
    classes = {capability_class((cc.major, cc.minor)) for cc in
               (ComputeCapability.parse(knowledge.gpu(name).compute_capability) for name in MAIN_GPUS)}
    return [*(("cuda", c) for c in sorted(classes, reverse=True)), ("cpu", (0, 0))]


def _offered(configuration: tuple[str, str, str], target: tuple[str, tuple[int, int]]) -> bool:
    """Whether the planner prints this configuration there: every one on a GPU (bfloat16 below sm80 too: `check`
    prints the figure of the default dtype it rejects), no fused kernel and no bitsandbytes on the CPU (flex is not
    offered there; the planner's bitsandbytes loads are CUDA's)."""
    return target[0] == "cuda" or (configuration[1] in ("sdpa", "eager") and configuration[2] == "none")


def _jobs(hub_id: str, generative: bool) -> list[tuple[tuple[str, str, str], tuple[int, int | None, int, bool],
                                                     tuple[str, tuple[int, int]]]]:
    """(configuration, workload, target): the measured ones on the H100 at their workloads and the planner's
    shape, and COVERAGE on every target at the planner's shape; each once."""
    measured = [(c, w, H100) for c in MEASURED.get(hub_id, EVERY_MODEL) for w in ([*WORKLOADS, PLANNED]
                                                                                 if generative else ENCODER)]
    covered = [(c, PLANNED, t) for t in _targets() for c in [*COVERAGE, *BNB_COVERAGE] if _offered(c, t)]
    return list(dict.fromkeys([*measured, *covered]))


def _key(config: dict[str, Any], architecture: str | None, configuration: tuple[str, str, str], padded: bool,
         target: tuple[str, tuple[int, int]]) -> dict[str, Any]:
    """The formula key the planner asks for this job (advisor.estimate.adapter builds the same)."""
    dtype, attn, quantization = configuration
    inputs = {"architecture": architecture, "dtype": dtype, "attn": attn, "quantization": quantization,
              "padded": padded, "device": target[0], "capability": target[1], "sdpa_backends": ALL_BACKENDS}
    return formula_store.formula_key(copy.deepcopy(config), inputs)


def _architectures(shipped: Any) -> list[str | None]:
    return ARCHITECTURES.get(shipped.hub_id, [(shipped.config.get("architectures") or [None])[0]])


def _quantized_digests() -> set[str]:
    """The key hashes of every quantized job: their runs are stored apart (QUANTIZED_RUNS_FILE)."""
    out = set()
    for shipped in load_knowledge().models:
        for architecture in _architectures(shipped):
            generative = bool(architecture and architecture.endswith(_GEN_SUFFIXES))
            for configuration, (_, _, _, padded), target in _jobs(shipped.hub_id, generative):
                if configuration[2] != "none":
                    key = _key(dict(shipped.config), architecture, configuration, padded, target)
                    out.add(analysis_cache.content_hash(key))
    return out


def _fits(hub_id: str, config: dict[str, Any], architecture: str | None, variants: list[str] | None = None,
          targets: list[str] | None = None) -> dict[str, list[Any]]:
    spec = describe_config(config, name=hub_id, source="shipped")
    generative = bool(architecture and architecture.endswith(_GEN_SUFFIXES))
    out: dict[str, list[Any]] = {}
    for (dtype, attn, quantization), (batch, prompt, new, padded), (device, capability) in _jobs(hub_id, generative):
        if variants is not None and f"{dtype}/{attn}/{quantization}" not in variants:
            continue
        if targets is not None and f"{device}:{capability[0]}.{capability[1]}" not in targets:
            continue
        if prompt is None:
            prompt = default_seq_len(spec, None)
        if generative and spec.max_positions and prompt + new > spec.max_positions:
            prompt = spec.max_positions - new  # as advisor.bench.fitted_workload cuts it
        key = _key(config, architecture, (dtype, attn, quantization), padded, (device, capability))
        digest = analysis_cache.content_hash(key)  # before the fit: a config class may edit nested dicts
        what = f"{hub_id} {architecture} {dtype}/{attn}/{quantization} {device}{capability} b{batch} x {prompt}"
        start = time.perf_counter()
        try:
            formula = formula_store.fit_one(key, architecture=architecture, batch=batch, prompt=prompt,
                                            seq_len=prompt + new, generative=generative)
        except Exception as exc:  # noqa: BLE001 - Refused, or a class without this attention: none stored
            print(f"  {what}: no formula: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            continue
        out.setdefault(digest, []).append(formula.model_dump(mode="json"))
        print(f"  {what}+{new}: {time.perf_counter() - start:.1f} s", flush=True)
    return out


def _pooled(table: dict[str, list[Any]], pool: dict[str, Any]) -> dict[str, list[Any]]:
    """The table with each formula's runs moved into `pool` (by content hash) and named by their hash."""
    out: dict[str, list[Any]] = {}
    for digest, formulas in table.items():
        for formula in formulas:
            names = []
            for run in formula["runs"]:
                if isinstance(run, str):
                    names.append(run)
                    continue
                name = analysis_cache.content_hash(run)[:20]
                pool.setdefault(name, run)
                names.append(name)
            out.setdefault(digest, []).append({**formula, "runs": names})
    return out


def main() -> None:
    import argparse

    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "data" / formula_store.FILE)
    parser.add_argument("--only", nargs="*", default=None, help="these shipped models (hub ids) only, merged")
    parser.add_argument("--variant", nargs="*", default=None, help="these DTYPE/ATTN/QUANTIZATION only, merged")
    parser.add_argument("--target", nargs="*", default=None, help="these DEVICE:MAJOR.MINOR only (cuda:8.0, cpu:0.0), "
                        "merged")
    args = parser.parse_args()
    path = args.out
    runs_path, quantized_path = path.with_name(FORMULA_RUNS_FILE), path.with_name(QUANTIZED_RUNS_FILE)
    old = json.loads(path.read_text()) if path.is_file() else {}
    old_runs = {name: run for p in (runs_path, quantized_path) if p.is_file()
                for name, run in json.loads(p.read_text()).get("runs", {}).items()}
    stamp = _simulator_stamp()
    current = old.get("simulator") == stamp
    releases = old.get("releases", {}) if current else {}
    pool: dict[str, Any] = old_runs if current else {}
    table: dict[str, list[Any]] = {}
    for shipped in load_knowledge().models:
        if args.only is not None and shipped.hub_id not in args.only:
            continue
        config = dict(shipped.config)
        for architecture in _architectures(shipped):
            for digest, formulas in _fits(shipped.hub_id, config, architecture, args.variant, args.target).items():
                table.setdefault(digest, []).extend(formulas)
    partial = args.only is not None or args.variant is not None or args.target is not None
    table = _pooled(table, pool)
    releases[transformers.__version__] = {**releases.get(transformers.__version__, {}), **table} if partial else table
    quantized = _quantized_digests()
    named: dict[bool, set[str]] = {True: set(), False: set()}  # a replaced release's runs are named by none
    for release in releases.values():
        for digest, formulas in release.items():
            named[digest in quantized].update(name for f in formulas for name in f["runs"])
    plain = named[False]
    data = {"generated_by": "scripts/precompute_memory.py", "simulator": stamp, "releases": releases}
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    for target, keep in ((runs_path, plain), (quantized_path, named[True] - plain)):
        runs = {"generated_by": "scripts/precompute_memory.py", "simulator": stamp,
                "runs": {name: run for name, run in pool.items() if name in keep}}
        target.write_text(json.dumps(runs, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{path}: {sum(len(v) for v in table.values())} formulas for transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
