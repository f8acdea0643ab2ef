#!/usr/bin/env python
"""The fixed cost of tensor parallel on CPU processes: what a one-shot job pays before its first token (issue 30).

Why: `recommend --workload one-shot` weighs TP's per-token gain against what TP costs once per job: torchrun
starting N processes, each importing torch and transformers and joining a process group. On GPUs each rank also
creates a CUDA context and NCCL communicators; no machine with several GPUs is lent, so those are not measured
here (the advisor calls them a prediction). What this box can measure is measured, with the tp_smoke machinery
(advisor/prove/tp_smoke.py: the same launcher line, environment and worker):

- `job`: the tiny Llama of the tests (4 heads, 2 KV heads, saved with save_pretrained) loaded and run once, as one
  process (the worker's float32 reference) and as N ranks under `python -m torch.distributed.run` (gloo). The
  model is tiny, so the difference is the fixed cost of TP itself;
- `probe`: a script that only imports torch and transformers (and, as a rank, runs `init_process_group("gloo")`
  and a barrier), with a timestamp after each step, to say where that difference goes.

Rounds alternate one process and N ranks, so load from other users of a shared box hits both; medians are kept.

    python benchmarks/tp_fixed_cost.py              # docs/benchmarks/parallel/tp-fixed-cost.{json,md}, data/tp_fixed_cost.json
    python benchmarks/tp_fixed_cost.py --rounds 1 --dry-run   # one round, nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROBE = """\
import json, os, sys, time
t0 = time.time()
import torch
t1 = time.time()
import transformers
t2 = time.time()
rank = os.environ.get("RANK")
if rank is not None:
    import torch.distributed as dist
    dist.init_process_group("gloo")
    dist.barrier()
    t3 = time.time()
    dist.destroy_process_group()
else:
    t3 = t2
name = f"rank{rank}" if rank is not None else "one"
open(os.path.join(sys.argv[1], name + ".json"), "w").write(json.dumps(
    {"start": t0, "torch": t1, "transformers": t2, "group": t3, "end": time.time()}))
"""


def _save_tiny_llama(folder: Path) -> None:
    """The tests' tiny_llama shape (tests/conftest.py), without its tokenizer: the worker feeds token ids."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
                                      max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, the epoch time it started)."""
    started, t = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=900,
                          check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return wall, started


def _launcher(size: int, port: int, *rest: str) -> list[str]:
    """tp_smoke's launcher line, without the lifeline (this script is the parent)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(size),
            "--master-addr", "127.0.0.1", "--master-port", str(port), *rest]


def _read(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _round(tmp: Path, model: Path, size: int, env: dict[str, str]) -> dict[str, Any]:
    from advisor.prove.tp_smoke import WORKER, _free_port

    job = tmp / "job"
    job.mkdir(exist_ok=True)
    request = job / "request.json"
    request.write_text(json.dumps({"path": str(model), "auto_class": "AutoModelForCausalLM",
                                   "from_pretrained": {"dtype": "float32", "distributed_config":
                                                       {"tp_size": size, "tp_plan": "auto"}},
                                   "vocab_size": 1000, "batch": 2, "seq_len": 16}), encoding="utf-8")
    one_wall, _ = _timed([sys.executable, "-m", WORKER, str(request)], env)
    tp_wall, _ = _timed(_launcher(size, _free_port(), "-m", WORKER, str(request)), env)
    ref, rank0 = _read(job, "reference"), _read(job, "rank0")
    if not (ref.get("ok") and rank0.get("ok")):
        raise SystemExit(f"the tiny Llama did not run: {ref.get('error')} {rank0.get('error')}")

    probe = tmp / "probe"
    probe.mkdir(exist_ok=True)
    script = tmp / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    p_one_wall, p_one_at = _timed([sys.executable, str(script), str(probe)], env)
    p_tp_wall, p_tp_at = _timed(_launcher(size, _free_port(), str(script), str(probe)), env)
    one = _read(probe, "one")
    ranks = [_read(probe, f"rank{r}") for r in range(size)]
    return {
        "job": {"one_process_seconds": one_wall, "tensor_parallel_seconds": tp_wall,
                "extra_seconds": tp_wall - one_wall,
                "load_seconds": {"one_process": ref["load_seconds"], "rank0": rank0["load_seconds"]},
                "max_abs_diff": rank0.get("max_abs_diff")},
        "probe": {
            "one_process": {"wall_seconds": p_one_wall, "interpreter_start_seconds": one["start"] - p_one_at,
                            "import_torch_seconds": one["torch"] - one["start"],
                            "import_transformers_seconds": one["transformers"] - one["torch"]},
            "tensor_parallel": {
                "wall_seconds": p_tp_wall,
                # torchrun itself imports torch, rendezvous, then spawns: until the last rank's first line
                "launcher_until_ranks_start_seconds": max(r["start"] for r in ranks) - p_tp_at,
                "import_torch_seconds": max(r["torch"] - r["start"] for r in ranks),
                "import_transformers_seconds": max(r["transformers"] - r["torch"] for r in ranks),
                "gloo_init_and_barrier_seconds": max(r["group"] - r["transformers"] for r in ranks),
                "teardown_seconds": p_tp_at + p_tp_wall - max(r["end"] for r in ranks)},
        },
    }


def _median(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in rounds:
        value: Any = r
        for key in path:
            value = value[key]
        values.append(float(value))
    return round(statistics.median(values), 3)


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, in the same nesting as one round."""
    def walk(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        return {k: walk(v, (*path, k)) if isinstance(v, dict) else
                (_median(rounds, *path, k) if v is not None else None) for k, v in node.items()}
    return walk(rounds[0], ())


def _markdown(data: dict[str, Any]) -> str:
    m = data["median"]
    job, one, tp = m["job"], m["probe"]["one_process"], m["probe"]["tensor_parallel"]
    n = data["tp"]
    return "\n".join([
        f"# Tensor parallel's fixed cost on CPU processes ({n} ranks)",
        "",
        f"`python benchmarks/tp_fixed_cost.py` on {data['machine']}; torch {data['torch']}, transformers "
        f"{data['transformers']}; median of {len(data['rounds'])} rounds (load average at start: "
        f"{data['load_average']}). CPU-process measurements: on GPUs each rank also creates a CUDA context and "
        "NCCL communicators, not measured here (a prediction in the advisor's reasons).",
        "",
        "| the whole job: tiny Llama loaded and run once | seconds |",
        "|---|---|",
        f"| one process (`python -m advisor.prove.tp_worker`, float32 reference) | {job['one_process_seconds']} |",
        f"| {n} ranks (`python -m torch.distributed.run --nproc-per-node {n}`, gloo) | {job['tensor_parallel_seconds']} |",
        f"| **fixed cost of tensor parallel** | **{job['extra_seconds']}** |",
        f"| from_pretrained inside: one process / rank 0 (rank 0 includes the process group and device mesh) | "
        f"{job['load_seconds']['one_process']} / {job['load_seconds']['rank0']} |",
        "",
        "| where it goes (import-only probe) | one process | " + f"{n} ranks (slowest rank) |",
        "|---|---|---|",
        f"| launcher until the script starts (torchrun imports torch, rendezvous, spawns) | "
        f"{one['interpreter_start_seconds']} | {tp['launcher_until_ranks_start_seconds']} |",
        f"| import torch | {one['import_torch_seconds']} | {tp['import_torch_seconds']} |",
        f"| import transformers | {one['import_transformers_seconds']} | {tp['import_transformers_seconds']} |",
        f"| init_process_group(\"gloo\") + barrier | - | {tp['gloo_init_and_barrier_seconds']} |",
        f"| after the script, until the launcher exits | - | {tp['teardown_seconds']} |",
        f"| wall | {one['wall_seconds']} | {tp['wall_seconds']} |",
        "",
        f"On this box the {n} ranks share {os.cpu_count()} cores, so their imports contend; a GPU host with more "
        "cores imports in parallel, and adds the CUDA context and NCCL setup per rank. Read by "
        "`recommend --workload one-shot` through data/tp_fixed_cost.json (docs/parallelism.md).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dry-run", action="store_true", help="print the result, write nothing")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "benchmarks" / "parallel" / "tp-fixed-cost.json")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "tp_fixed_cost.json")
    args = parser.parse_args(argv)
    import torch
    import transformers

    from advisor.prove.tp_smoke import _env

    env = {**_env(), "PYTHONPATH": str(REPO)}
    env.pop("RANK", None)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny_llama"
        _save_tiny_llama(model)
        for i in range(args.rounds):
            rounds.append(_round(Path(tmp), model, args.tp, env))
            print(f"round {i + 1}: one process {rounds[-1]['job']['one_process_seconds']:.2f} s, {args.tp} ranks "
                  f"{rounds[-1]['job']['tensor_parallel_seconds']:.2f} s", file=sys.stderr)
    machine = f"shared CPU box: {os.cpu_count()} CPU cores, {platform.machine()}, python {platform.python_version()}"
    data = {
        "description": ("Fixed cost of tensor parallel on CPU processes: a tiny Llama loaded and run once as one "
                        f"process and as {args.tp} ranks under torch.distributed.run (gloo), and an import-only "
                        "probe saying where the difference goes. CUDA context and NCCL setup are not measured."),
        "generated_by": "python benchmarks/tp_fixed_cost.py",
        "machine": machine, "torch": torch.__version__, "transformers": transformers.__version__,
        "tp": args.tp, "load_average": load, "median": _summary(rounds), "rounds": rounds,
    }
    m = data["median"]
    compact = {
        "description": ("What tensor parallel costs once per job, measured on CPU processes by "
                        "benchmarks/tp_fixed_cost.py (docs/benchmarks/parallel/tp-fixed-cost.json); read by "
                        "`recommend --workload one-shot`. GPU-only costs (CUDA context, NCCL) are not in it."),
        "generated_by": data["generated_by"], "machine": machine, "torch": data["torch"],
        "transformers": data["transformers"], "ranks": args.tp, "rounds": args.rounds,
        "one_process_seconds": m["job"]["one_process_seconds"],
        "tensor_parallel_seconds": m["job"]["tensor_parallel_seconds"],
        "extra_seconds": m["job"]["extra_seconds"],
        "gloo_init_seconds": m["probe"]["tensor_parallel"]["gloo_init_and_barrier_seconds"],
    }
    text = json.dumps(data, indent=1) + "\n"
    if args.dry_run:
        print(text)
        print(_markdown(data))
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    args.output.with_suffix(".md").write_text(_markdown(data), encoding="utf-8")
    args.data.write_text(json.dumps(compact, indent=1) + "\n", encoding="utf-8")
    print(_markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
