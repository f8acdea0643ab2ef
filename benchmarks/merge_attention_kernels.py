#!/usr/bin/env python3
"""benchmarks/attention_kernels.py's results into the advisor's shipped rows (data/measurements/<gpu>.json).

Usage (any machine, repository root; re-run whenever files are added to the folder):

    python benchmarks/merge_attention_kernels.py [FOLDER ...] [--data data/measurements] [--check]

Reads EVERY `attention-kernels-*.json` in each FOLDER (default docs/gpu/attention-kernels): the measure phase
gives rows, the compile phase gives flex_attention's cold first calls. A row's key is the advisor's: the GPU's
name and compute capability, torch without its local tag (as the probe records it), transformers, the attention
kernels installed (flash-attn-4 included), the model type and the shape signature of the FULL config (the child
ran LAYERS layers: `layers` says so), the workload and the candidate label as the planner writes it. The value is
the steady-state median; `first_call_seconds` is the first forward of a fresh process at that shape, apart: for
flex_attention the compile phase's cold compile where it ran (the measure phase found inductor's cache warm),
else the child's own first call. An implementation the model refused, or one that `set_attn_implementation` left
on another kernel (Falcon's FA4 request stayed sdpa), gives no row; the run entry lists it with the reason. Where
the kernel it stayed on has no timing of its own in that child (BLOOM's sdpa request runs eager), the first such
timing is that kernel's row.
Rows go to the file of their GPU (an H100 to h100.json, an H200 to h200.json, never mixed). Idempotent: a row
replaces the row of the same key, a run entry the entry of the same run; `--check` writes nothing and exits 1
when the files are not up to date.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_FOLDER = ROOT / "docs" / "gpu" / "attention-kernels"
DEFAULT_DATA = ROOT / "data" / "measurements"
KERNEL_DISTS = ("flash-attn", "flash-attn-3", "flash-attn-4", "kernels")  # advisor.knowledge.measurements' order


def _date(path: Path) -> str:
    """The day the file was committed (stable across re-runs), else today's."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=ROOT, capture_output=True,
                             text=True, check=False).stdout.strip()
    except OSError:
        out = ""
    return out or datetime.now(timezone.utc).date().isoformat()


def gpu_file(gpu: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100': one file per GPU model, so H200 rows never land in h100.json."""
    found = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Z]?)\b", gpu.upper())
    if not found:
        raise SystemExit(f"cannot tell the GPU model of {gpu!r}; pass --target FILE")
    return found.group(1).lower()


def _kernels(environment: dict[str, Any]) -> str:
    """The attention_kernels key field, from what the run recorded (a package it did not record was not there)."""
    def version(dist: str) -> str:
        value = environment.get(dist)
        return value if isinstance(value, str) and value and not value.startswith("not installed") else "none"

    return ";".join(f"{dist}={version(dist)}" for dist in KERNEL_DISTS)


_SPECS: dict[str, Any] = {}


def spec_of(name: str) -> Any:
    """The advisor's ModelSpec of the FULL config the child was cut from (so the shape is the real model's)."""
    if name not in _SPECS:
        from attention_kernels import config_of

        from advisor.model.resolve import resolve_model

        folder = Path(tempfile.mkdtemp()) / name.replace("/", "--")
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config_of(name)))
        _SPECS[name] = resolve_model(str(folder / "config.json"))
    return _SPECS[name]


def _label(attn: str, dtype: str) -> str:
    from advisor.candidate import Candidate

    return Candidate(attn=attn, dtype=dtype, quantization="none", placement="gpu").label()  # type: ignore[arg-type]


def _cold_first_calls(files: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str, str, str, str], float]:
    """(gpu, model, dtype, attn, workload) -> the compile phase's first call (a cold compile)."""
    out: dict[tuple[str, str, str, str, str], float] = {}
    for _, data in files:
        if data.get("phase") != "compile":
            continue
        gpu = data["environment"]["gpu"]
        for child in data.get("children", []):
            for row in child.get("rows", []):
                for workload in ("prefill", "batch"):
                    seconds = (row.get(workload) or {}).get("first_call_seconds")
                    if seconds is not None and row.get("set_to", row["attn"]) == row["attn"]:
                        key = (gpu, child["name"], child["dtype"], row["attn"], workload)
                        # the largest over compile phases: a pair compiled beside its other dtype finds part of
                        # inductor's cache warm (Llama-3-8B fp16 in the first session: 8.7 s, cold 20.1 s)
                        out[key] = max(float(seconds), out.get(key, 0.0))
    return out


def _source(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def rows_of(path: Path, data: dict[str, Any], cold: dict[tuple[str, str, str, str, str], float],
            date: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """One measure file: its run entry, its rows, and model key -> model name. `date`: the day an earlier merge
    recorded for this file (kept, so a re-run changes nothing), else the day the file was committed."""
    env = data["environment"]
    major, minor = env["capability"]
    date = date or _date(path)
    run = f"attention_kernels-{path.stem.removeprefix('attention-kernels-')}-{date.replace('-', '')}"
    dtypes = sorted({c["dtype"] for c in data.get("children", [])})
    entry: dict[str, Any] = {
        "run": run,
        "command": f"python3 benchmarks/attention_kernels.py $OUT --phase measure --dtypes {' '.join(dtypes)}",
        "merged_by": "python benchmarks/merge_attention_kernels.py",
        "source": _source(path),
        "measured_at": date,
        "elapsed_seconds": data.get("elapsed_seconds"),
        "workloads": data.get("workloads"),
        "layers": data.get("layers"),
        "environment": env,
        "not_rows": [],
        "not_run": data.get("skipped", []),
    }
    rows: list[dict[str, Any]] = []
    models: dict[str, str] = {}
    for child in data.get("children", []):
        name, dtype = child["name"], child["dtype"]
        if "error" in child:
            entry["not_rows"].append(f"{name} {dtype}: {child['error']}")
            continue
        spec = spec_of(name)
        from advisor.model.spec import shape_signature

        shape = shape_signature(spec)
        models[f"{spec.model_type} {shape}"] = name
        timed = {r["attn"] for r in child.get("rows", [])
                 if "refused" not in r and r.get("set_to", r["attn"]) == r["attn"]}
        for row in child.get("rows", []):
            attn = row["attn"]
            if "refused" in row:
                entry["not_rows"].append(f"{name} {dtype} {attn}: refused ({row['refused']})")
                continue
            if row.get("set_to", attn) != attn:
                landed = row["set_to"]
                kept = landed not in timed  # BLOOM's sdpa request runs eager: the first such timing is eager's row
                entry["not_rows"].append(f"{name} {dtype} {attn}: set_attn_implementation left it on {landed}, so "
                                         f"its timing is not {attn}'s" + (f" (kept as {landed}'s row)" if kept else ""))
                if not kept:
                    continue
                attn = landed
                timed.add(landed)
            for workload in ("prefill", "batch"):
                result = row.get(workload) or {}
                if "error" in result:
                    entry["not_rows"].append(f"{name} {dtype} {attn} {workload}: {result['error']}")
                    continue
                metric = ("decode_tokens_per_second" if "decode_tokens_per_second" in result
                          else "prefill_tokens_per_second")
                if not result.get(metric):
                    continue
                first = cold.get((env["gpu"], name, dtype, attn, workload), result.get("first_call_seconds"))
                rows.append({
                    "key": {"gpu": env["gpu"], "compute_capability": f"{major}.{minor}",
                            "driver": str(env.get("driver") or "unknown"), "torch": env["torch"].split("+")[0],
                            "transformers": env["transformers"], "attention_kernels": _kernels(env),
                            "model_type": spec.model_type, "shape": shape, "workload": workload,
                            "candidate": _label(attn, dtype)},
                    "metric": metric, "value": float(result[metric]), "spread": None, "measured_at": date,
                    "run": run, "layers": child.get("layers", data.get("layers")),
                    "first_call_seconds": None if first is None else round(float(first), 3),
                })
    return entry, rows, models


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(row["key"][k] for k in sorted(row["key"]))


def merge(folders: list[Path], data_dir: Path, target: Path | None = None) -> dict[Path, dict[str, Any]]:
    """Every measure/compile file of `folders` merged into the GPU files of `data_dir`: file -> new content."""
    files = [(p, json.loads(p.read_text(encoding="utf-8"))) for folder in folders
             for p in sorted(folder.glob("attention-kernels-*.json"))]
    files = [(p, d) for p, d in files if isinstance(d, dict) and d.get("phase") in ("measure", "compile")]
    dry = [p for p, d in files if not (d.get("environment") or {}).get("capability")]
    for path in dry:  # DEVICE=cpu SMALL=1 dry runs: no GPU, nothing to ship
        print(f"skipped {path.name}: not a GPU run", file=sys.stderr)
    files = [(p, d) for p, d in files if p not in dry]
    cold = _cold_first_calls(files)
    out: dict[Path, dict[str, Any]] = {}
    for path, data in files:
        if data["phase"] != "measure":
            continue
        dest = target or data_dir / f"{gpu_file(data['environment']['gpu'])}.json"
        current = out.get(dest)
        if current is None:
            current = (json.loads(dest.read_text(encoding="utf-8")) if dest.exists() else
                       {"schema_version": 1, "description": "Shipped measurements on one GPU (random weights).",
                        "runs": [], "rows": [], "models": {}})
        known = next((r.get("measured_at") for r in current["runs"] if r.get("source") == _source(path)), None)
        entry, rows, models = rows_of(path, data, cold, known)
        runs = [r for r in current["runs"] if r["run"] != entry["run"]] + [entry]
        fresh = {_key(r) for r in rows}
        kept = [r for r in current["rows"] if _key(r) not in fresh and r.get("run") != entry["run"]]
        current = {**current, "runs": runs, "rows": kept + rows,
                   "models": dict(sorted({**current.get("models", {}), **models}.items()))}
        out[dest] = current
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[DEFAULT_FOLDER])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the shipped GPU files")
    parser.add_argument("--target", type=Path, help="write every row to this file instead of <gpu>.json")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    args = parser.parse_args()
    missing = [f for f in args.folders if not f.is_dir()]
    if missing:
        print(f"error: {missing[0]} is not a folder; pass the folder of attention-kernels-*.json files",
              file=sys.stderr)
        return 2
    merged = merge([f.resolve() for f in args.folders], args.data, args.target)
    stale = 0
    for dest, content in merged.items():
        text = json.dumps(content, indent=1) + "\n"
        same = dest.exists() and dest.read_text(encoding="utf-8") == text
        stale += not same
        if not args.check and not same:
            dest.write_text(text, encoding="utf-8")
        new = [r for r in content["rows"] if str(r["run"]).startswith("attention_kernels-")]
        types = sorted({r["key"]["model_type"] for r in new})
        print(f"{dest.name}: {len(content['rows'])} rows, {len(new)} from attention_kernels.py "
              f"({len(types)} model types: {', '.join(types)}){'' if same else ' (changed)'}")
        for run in content["runs"]:
            for reason in run.get("not_rows", []):
                print(f"  not its own row: {reason}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
