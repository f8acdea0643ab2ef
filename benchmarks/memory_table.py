"""Predicted against measured peak memory, from committed GPU runs and the current predictors.

Usage: python benchmarks/memory_table.py [--method simulated|estimated] FILE.json...
Two shapes of file are read:
- `advisor bench` reports (docs/benchmarks/<slug>-*.json): the model is the shipped config named by the file-name
  prefix (MODELS in regret_memory.py), loaded with the class those runs loaded (LOADED: before issue 13 the bench
  loaded BERT with AutoModel, i.e. without its masked-LM head);
- `benchmarks/h100_memory.py` runs (`"schema": "advisor-memory-run/1"`): each row carries its own config, class
  and workload, and for bitsandbytes 8-bit the LLM.int8 outlier columns each module's input had
  (`int8_outlier_columns`): data, like the prompt, that the meta run cannot see, so it is passed in
  (`simulate(int8_outliers=...)`); rows measured before that was recorded are predicted without outliers.
A row listed in an earlier file wins over the same model / workload / configuration in a later one, so the newest
run goes first. The simulation runs the installed transformers: the H100 runs used 5.17.0, so regenerate the
committed table with that release (`bash benchmarks/memory_table.sh`); a different release is printed as a note.
The measured peaks are torch.cuda.max_memory_allocated(); the predictions are recomputed now, so a change to the
simulator (or the closed form) shows up here without another GPU run. Prints a Markdown table and the worst error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from regret_memory import MODELS, slug_of  # noqa: E402

from advisor.estimate.memory import estimate_memory  # noqa: E402
from advisor.model.resolve import describe_config, resolve_model  # noqa: E402
from advisor.probe.target import load_environment  # noqa: E402
from advisor.prove.bench import BenchReport, repredict  # noqa: E402

GPU = load_environment(ROOT / "docs" / "examples" / "h100-probe.json").gpu_list
LOADED = {"bert-base": "BertModel"}  # the class `advisor bench` loaded in those runs (AutoModel)
RUN_SCHEMA = "advisor-memory-run/1"


def _bench_rows(path: Path, simulate: bool) -> list[tuple[str, str, str, int, int, str]]:
    slug = slug_of(path)
    report = BenchReport.model_validate_json(path.read_text())
    model = resolve_model(MODELS[slug])
    if slug in LOADED:
        model = model.model_copy(update={"architecture": LOADED[slug], "generative": False})
    out = []
    for row, predicted in repredict(report, model, GPU[:1], simulate=simulate):
        out.append((slug, report.workload.name, row.label, row.peak_memory_bytes or 1, predicted, ""))
    return out


def _run_rows(data: dict[str, Any], simulate: bool) -> list[tuple[str, str, str, int, int, str]]:
    out = []
    for row in data["rows"]:
        if not row.get("ok") or not row.get("peak_memory_bytes"):
            continue
        config = {**row["config"], "architectures": [row["architecture"]]}
        model = describe_config(config, name=row["name"], source="config-file")
        seq = row["prompt"] + max(row["new_tokens"], 0)
        if simulate and row.get("int8_outlier_columns"):
            predicted, method = _simulate_with_outliers(row, config, seq), "simulated"
        else:
            estimate = estimate_memory(
                model, dtype=row["dtype"], quantization=row["quantization"], attn=row["attn"], batch=row["batch"],
                seq_len=seq, prompt_len=row["prompt"], gpus=GPU[:1], simulate=simulate, padded=row["padded"],
                always_simulate=simulate,  # every row, also where the planner's fast path would not (issue 14)
            )
            predicted, method = estimate.peak_allocated_bytes, estimate.method
        label = f"{row['attn']} / {row['dtype']}" + (f" + bnb {row['quantization']}" if row["quantization"] != "none" else "")
        workload = f"b{row['batch']} x {row['prompt']}" + (f" +{row['new_tokens']}" if row["new_tokens"] else "")
        out.append((row["name"], workload, label, row["peak_memory_bytes"], predicted, method))
    return out


def _simulate_with_outliers(row: dict[str, Any], config: dict[str, Any], seq: int) -> int:
    """The simulated peak (what `estimate_memory` reports for it) with the measured int8 outlier columns."""
    from advisor.estimate.simulate import simulate

    gpu = GPU[0]
    cc = gpu.compute_capability
    result = simulate(config, architecture=row["architecture"], dtype=row["dtype"], attn=row["attn"],
                      quantization=row["quantization"], batch=row["batch"], prompt_len=row["prompt"], seq_len=seq,
                      padded=row["padded"], device="cuda", capability=(int(cc.major), int(cc.minor)),
                      int8_outliers={name: {int(r): n for r, n in per.items()}
                                     for name, per in row["int8_outlier_columns"].items()})
    return result.peak_bytes


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--method", choices=("simulated", "estimated"), default="simulated")
    args = parser.parse_args(argv)
    simulate = args.method == "simulated"
    print("| model | workload | configuration | measured GiB | predicted GiB | error |")
    print("|---|---|---|---|---|---|")
    worst, count, seen = 0.0, 0, set()
    import transformers

    notes = []
    for path in args.files:
        data = json.loads(path.read_text())
        measured_with = data.get("transformers")
        if simulate and measured_with and measured_with != transformers.__version__:
            notes.append(f"{path.name}: measured with transformers {measured_with}, simulated with "
                         f"{transformers.__version__}")
        rows = _run_rows(data, simulate) if data.get("schema") == RUN_SCHEMA else _bench_rows(path, simulate)
        for name, workload, label, measured, predicted, _ in rows:
            if (name, workload, label) in seen:
                continue  # the advisor's choice is measured in several bench files: list it once
            seen.add((name, workload, label))
            error = (predicted - measured) / measured
            worst, count = max(worst, abs(error)), count + 1
            print(f"| {name} | {workload} | {label} | {measured / 2**30:.2f} | {predicted / 2**30:.2f} "
                  f"| {100 * error:+.1f}% |", flush=True)
    print(f"\n{count} configurations ({args.method}, transformers {transformers.__version__}); "
          f"largest absolute error: {100 * worst:.1f}%")
    for note in notes:
        print(f"\nNote: {note}")
    return worst


if __name__ == "__main__":
    main(sys.argv[1:])
