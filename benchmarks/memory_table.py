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
import contextlib
import json
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from regret_memory import MODELS, slug_of  # noqa: E402

from advisor.estimate import formula_store  # noqa: E402
from advisor.estimate.memory import estimate_memory  # noqa: E402
from advisor.model.resolve import describe_config, resolve_model  # noqa: E402
from advisor.plan.emit import quantization_of  # noqa: E402
from advisor.probe.target import load_environment  # noqa: E402
from advisor.prove.bench import BenchReport  # noqa: E402

GPU = load_environment(ROOT / "docs" / "examples" / "h100-probe.json").gpu_list
LOADED = {"bert-base": "BertModel"}  # the class `advisor bench` loaded in those runs (AutoModel)
RUN_SCHEMA = "advisor-memory-run/1"
# measured after the simulator and the formulas were written, on architectures nothing here was shaped on
OUT_OF_SAMPLE = {"h100-memory-issue27.json", "h100-memory-issue27-s7.json", "h100-memory-whisper.json",
                 "h100-memory-issue27-s8.json"}
# rows of an out-of-sample file whose miss a later fix was shaped on: in-sample since (stop 39: LongCat-Flash's
# derived layer count, -20.8% before advisor/estimate/simulate.py's `_layer_key` read the stored one)
SHAPED_ON = {"longcat-flash-small"}
# state-space and hybrid models (Mamba, Mamba-2, their hybrids; gated delta-net, short-convolution, lightning and
# other linear-attention hybrids)
RECURRENT = ("mamba", "jamba", "bamba", "falcon-h1", "qwen3-next", "lfm2", "granitemoehybrid", "minimax",
             "kimi-linear", "olmo-hybrid", "zamba2")


def _bench_rows(path: Path, simulate: bool) -> list[tuple[str, str, str, int, int, str]]:
    slug = slug_of(path)
    report = BenchReport.model_validate_json(path.read_text())
    model = resolve_model(MODELS[slug])
    if slug in LOADED:
        model = model.model_copy(update={"architecture": LOADED[slug], "generative": False})
    out = []
    w = report.workload
    with _fresh_cache():  # a SHIPPED model: the planner's call, served by data/memory_formulas.json or closed form
        for row in report.rows:
            if not row.ok or row.baseline or row.peak_memory_bytes is None:
                continue
            kwargs = row.from_pretrained
            if not simulate:
                predicted = _closed_form(model, kwargs.get("dtype") or kwargs["torch_dtype"], quantization_of(kwargs),
                                         kwargs["attn_implementation"], w.batch, w.prompt, w.prompt + w.new_tokens)
                out.append((slug, w.name, row.label, row.peak_memory_bytes, predicted, "shipped: closed form"))
                continue
            estimate = estimate_memory(
                model, dtype=kwargs.get("dtype") or kwargs["torch_dtype"], quantization=quantization_of(kwargs),
                attn=kwargs["attn_implementation"], batch=w.batch, seq_len=w.prompt + w.new_tokens,
                prompt_len=w.prompt, gpus=GPU[:1], simulate=simulate, padded=w.mixed)
            method = "formula" if estimate.method == "simulated" else "closed form"
            out.append((slug, w.name, row.label, row.peak_memory_bytes, estimate.peak_allocated_bytes,
                        f"shipped: {method}"))
    return out


def _run_rows(data: dict[str, Any], simulate: bool, shard: tuple[int, int] = (0, 1)
              ) -> Iterator[tuple[str, str, str, int, int, str]]:
    """Each row predicted as `recommend`/`check` print it (estimate_memory, the planner's call, on a model from
    describe_config) by two paths, each in a fresh analysis cache: a NEW config (counted now, so simulated, and
    its formula fitted), and a config SEEN before at the other shape of the same model (its first run fitted a
    formula there; this shape is then served by the formula without a run, or simulated where none holds)."""
    rows = [r for r in data["rows"] if r.get("ok") and r.get("peak_memory_bytes")]
    for index, row in enumerate(rows):
        if index % shard[1] != shard[0]:
            continue
        label = f"{row['attn']} / {row['dtype']}" + (f" + bnb {row['quantization']}" if row["quantization"] != "none" else "")
        workload = f"b{row['batch']} x {row['prompt']}" + (f" +{row['new_tokens']}" if row["new_tokens"] else "")
        if not simulate:
            model = describe_config({**row["config"], "architectures": [row["architecture"]]}, name=row["name"],
                                    source="config-file")
            predicted = _closed_form(model, row["dtype"], row["quantization"], row["attn"], row["batch"],
                                     row["prompt"], row["prompt"] + max(row["new_tokens"], 0))
            yield (row["name"], workload, label, row["peak_memory_bytes"], predicted, "new: closed form")
            continue
        if row.get("int8_outlier_columns"):  # data the meta run cannot see: passed in, as the planner cannot
            predicted = _simulate_with_outliers(row, {**row["config"], "architectures": [row["architecture"]]},
                                                row["prompt"] + max(row["new_tokens"], 0))
            yield (row["name"], workload, label, row["peak_memory_bytes"], predicted, "simulated+outliers")
            continue
        with _fresh_cache():
            predicted, method = _planned(row, row)
        yield (row["name"], workload, label, row["peak_memory_bytes"], predicted, f"new: {method}")
        other = _other_shape(row)
        with _fresh_cache():
            _planned(row, other)  # the first run, at another shape of the same workload
            formula_store.fit_pending()  # what `python -m advisor` leaves to its detached fit after the answer
            predicted, method = _planned(row, row)
        seen = f"b{other['batch']} x {other['prompt']}"
        yield (row["name"], workload, label, row["peak_memory_bytes"], predicted, f"seen at {seen}: {method}")


def _closed_form(model: Any, dtype: str, quantization: str, attn: str, batch: int, prompt: int, seq: int) -> int:
    """The closed form's peak, the planner's last resort (advisor.memory: what estimate_memory adds up when no
    simulation or formula answers)."""
    from advisor.estimate import memory

    return (memory.weight_bytes(model, dtype, quantization) + memory.kv_cache_bytes(model, dtype, batch, seq)
            + memory.activation_bytes(model, dtype, attn, batch, prompt, gpu=True, quantization=quantization))


def _other_shape(row: dict[str, Any]) -> dict[str, Any]:
    """Another batch and prompt of the row's workload (same padding, same new tokens): a config seen before."""
    batch = 1 if row["batch"] == 1 else row["batch"] + 3
    prompt = row["prompt"] - 64 if row["prompt"] > 128 else row["prompt"] + 64
    return {**row, "batch": batch, "prompt": prompt}


@contextlib.contextmanager
def _fresh_cache() -> Any:
    """A new, empty analysis cache (the planner's state on a machine that never saw the model)."""
    import os
    import tempfile

    from advisor.io import analysis_cache
    from advisor.io.environ import scoped_environ

    with tempfile.TemporaryDirectory(prefix="advisor-table-") as folder, \
            scoped_environ({analysis_cache.CACHE_DIR_ENV: folder}, keep=[analysis_cache.NO_CACHE_ENV]):
        os.environ.pop(analysis_cache.NO_CACHE_ENV, None)
        yield


def _planned(row: dict[str, Any], shape: dict[str, Any]) -> tuple[int, str]:
    """(the peak the planner prints for `row`'s model at `shape`'s workload, where it came from)."""
    from advisor.estimate import simulate as sim

    config = {**row["config"], "architectures": [row["architecture"]]}
    model = describe_config(config, name=row["name"], source="config-file")
    sim._simulate_cached.cache_clear()  # a run of this process must not serve the next path
    before = sim._simulate_cached.cache_info().misses
    estimate = estimate_memory(
        model, dtype=row["dtype"], quantization=row["quantization"], attn=row["attn"], batch=shape["batch"],
        seq_len=shape["prompt"] + max(shape["new_tokens"], 0), prompt_len=shape["prompt"], gpus=GPU[:1],
        simulate=True, padded=shape["padded"],
    )
    ran = sim._simulate_cached.cache_info().misses > before
    method = "closed form" if estimate.method == "estimated" else "simulated" if ran else "formula"
    return estimate.peak_allocated_bytes, method


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
    parser.add_argument("--bound-out", type=Path, help="write the error range (data/closed_form_error.json)")
    parser.add_argument("--shard", default="0/1", help="I/N: only the run rows whose index is I mod N")
    args = parser.parse_args(argv)
    simulate = args.method == "simulated"
    stack = contextlib.ExitStack()
    print("| model | workload | configuration | measured GiB | predicted GiB | error | path: source |")
    print("|---|---|---|---|---|---|---|")
    worst, count, seen = 0.0, 0, set()
    groups: dict[str, list[float]] = {}
    del stack
    import transformers

    notes = []
    for path in args.files:
        data = json.loads(path.read_text())
        measured_with = data.get("transformers")
        if simulate and measured_with and measured_with != transformers.__version__:
            notes.append(f"{path.name}: measured with transformers {measured_with}, simulated with "
                         f"{transformers.__version__}")
        shard = tuple(int(x) for x in args.shard.split("/"))
        rows = _run_rows(data, simulate, shard) if data.get("schema") == RUN_SCHEMA else _bench_rows(path, simulate)
        for name, workload, label, measured, predicted, method in rows:
            sample = "out-of-sample" if path.name in OUT_OF_SAMPLE and name not in SHAPED_ON else "in-sample"
            if (name, workload, label, method) in seen:
                continue  # the advisor's choice is measured in several bench files: list it once
            seen.add((name, workload, label, method))
            error = (predicted - measured) / measured
            worst, count = max(worst, abs(error)), count + 1
            path_kind = method.split(":")[0].split(" at ")[0]
            groups.setdefault(f"{sample}, {path_kind}", []).append(error)
            groups.setdefault(f"{sample}, all paths", []).append(error)
            if any(marker in name for marker in RECURRENT):
                groups.setdefault("SSM and hybrid rows, all paths", []).append(error)
            print(f"| {name} | {workload} | {label} | {measured / 2**30:.2f} | {predicted / 2**30:.2f} "
                  f"| {100 * error:+.1f}% | {method} |", flush=True)
    print(f"\n{count} predictions ({args.method}, transformers {transformers.__version__}); "
          f"largest absolute error: {100 * worst:.1f}%\n")
    print("| rows | predictions | within 5% | within 0.5% | worst |")
    print("|---|---|---|---|---|")
    for group, errors in sorted(groups.items()):
        print(f"| {group} | {len(errors)} | {sum(abs(e) <= 0.05 for e in errors)} | "
              f"{sum(abs(e) <= 0.005 for e in errors)} | {100 * max(errors, key=abs):+.1f}% |")
    if args.bound_out is not None:
        errors = [e for k, v in groups.items() if k.endswith("all paths") and not k.startswith("SSM") for e in v]
        args.bound_out.write_text(json.dumps({
            "generated_by": f"benchmarks/memory_table.py --method {args.method} --bound-out (transformers "
                            f"{transformers.__version__})",
            "rows": len(errors), "low": round(min(errors), 4), "high": round(max(errors), 4)}, indent=1) + "\n")
    for note in notes:
        print(f"\nNote: {note}")
    return worst


if __name__ == "__main__":
    main(sys.argv[1:])
