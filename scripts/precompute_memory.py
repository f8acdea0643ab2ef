"""Regenerate data/memory_formulas.json: exact memory formulas for shipped models (issue 27), per release.

Usage (after any change to advisor/estimate/, whose stamp the file carries; run once per transformers release):
    python scripts/precompute_memory.py                                  # the installed transformers
    PYTHONPATH=/tmp/advisor-transformers-5.17.0 python scripts/precompute_memory.py   # another release

Each (shipped model, configuration, workload) below, and the planner's own shape (batch 1, a prefill of the
default length: one formula for every --seq-len of `recommend`/`check` at batch 1), gets the formula of its
workload's region, fitted on the simulator's allocation trace and proved on held-out shapes
(advisor.estimate.trace_formula); a refusal is printed and nothing stored. With the file, `recommend`/`check` on a shipped model at any shape of a stored region
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
from advisor.estimate.simulate import _GEN_SUFFIXES  # noqa: E402
from advisor.io import analysis_cache  # noqa: E402
from advisor.knowledge import load_knowledge  # noqa: E402
from advisor.model.resolve import describe_config  # noqa: E402
from advisor.plan.recommend import default_seq_len  # noqa: E402

H100 = ("cuda", (9, 0))
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


def _fits(hub_id: str, config: dict[str, Any], architecture: str | None, variants: list[str] | None = None
          ) -> dict[str, list[Any]]:
    spec = describe_config(config, name=hub_id, source="shipped")
    generative = bool(architecture and architecture.endswith(_GEN_SUFFIXES))
    out: dict[str, list[Any]] = {}
    for dtype, attn, quantization in MEASURED.get(hub_id, EVERY_MODEL):
        if variants is not None and f"{dtype}/{attn}/{quantization}" not in variants:
            continue
        for batch, prompt, new, padded in ([*WORKLOADS, PLANNED] if generative else ENCODER):
            if prompt is None:
                prompt = default_seq_len(spec, None)
            if generative and spec.max_positions and prompt + new > spec.max_positions:
                prompt = spec.max_positions - new  # as advisor.bench.fitted_workload cuts it
            device, capability = H100
            inputs = {"architecture": architecture, "dtype": dtype, "attn": attn,
                      "quantization": quantization, "padded": padded, "device": device, "capability": capability,
                      "sdpa_backends": ("flash", "efficient", "math")}
            key = formula_store.formula_key(copy.deepcopy(config), inputs)
            digest = analysis_cache.content_hash(key)  # before the fit: a config class may edit nested dicts
            start = time.perf_counter()
            try:
                formula = formula_store.fit_one(key, architecture=architecture, batch=batch, prompt=prompt,
                                                seq_len=prompt + new, generative=generative)
            except Exception as exc:  # noqa: BLE001 - Refused, or a class without this attention: none stored
                print(f"  {hub_id} {architecture} {dtype}/{attn}/{quantization} b{batch} x {prompt}: no formula: "
                      f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            out.setdefault(digest, []).append(formula.model_dump(mode="json"))
            print(f"  {hub_id} {architecture} {dtype}/{attn}/{quantization} b{batch} x {prompt}+{new}: "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    return out


def main() -> None:
    import argparse

    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "data" / formula_store.FILE)
    parser.add_argument("--only", nargs="*", default=None, help="these shipped models (hub ids) only, merged")
    parser.add_argument("--variant", nargs="*", default=None, help="these DTYPE/ATTN/QUANTIZATION only, merged")
    args = parser.parse_args()
    path = args.out
    old = json.loads(path.read_text()) if path.is_file() else {}
    stamp = _simulator_stamp()
    releases = old.get("releases", {}) if old.get("simulator") == stamp else {}
    table: dict[str, list[Any]] = {}
    for shipped in load_knowledge().models:
        if args.only is not None and shipped.hub_id not in args.only:
            continue
        config = dict(shipped.config)
        for architecture in ARCHITECTURES.get(shipped.hub_id, [(config.get("architectures") or [None])[0]]):
            for digest, formulas in _fits(shipped.hub_id, config, architecture, args.variant).items():
                table.setdefault(digest, []).extend(formulas)
    partial = args.only is not None or args.variant is not None
    releases[transformers.__version__] = {**releases.get(transformers.__version__, {}), **table} if partial else table
    data = {"generated_by": "scripts/precompute_memory.py", "simulator": stamp, "releases": releases}
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{path}: {sum(len(v) for v in table.values())} formulas for transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
