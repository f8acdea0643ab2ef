#!/usr/bin/env python3
"""Issue 12 on the H100: the shipped measurements, the depth check, the tune run of a 7B and the smoke fidelity.

Two calls of at most 9 minutes each, then a merge on any machine:

    python benchmarks/h100_measure.py --part 1 OUT_DIR   # depth check + the first half of the architectures
    python benchmarks/h100_measure.py --part 2 OUT_DIR   # the rest + `advisor tune` on a 7B + fidelity
    python benchmarks/h100_measure.py --merge OUT_DIR data/measurements/h100.json

Every candidate runs in a child through the benchmark worker (advisor/prove/bench_worker.py) with random weights built
on the device (advisor/prove/random_model.py), on the real config of each model (data/models/ or the configs
below). Workloads: prefill at batch 1 (one forward of 1 x 2048 tokens) and batched decode (16 x 512, 32 new
tokens). Candidates: sdpa and eager in bfloat16 (flex_attention compiles for tens of seconds per shape and
FlashAttention is not installed on the device; `advisor tune` times flex). Depth: full, except where the depth
check of part 1 (full against 4 layers, three model types) kept the ranking and a model would not fit in time.
A part stops starting children past its deadline and writes what it has.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEADLINE = float(os.environ.get("MEASURE_DEADLINE", "430"))  # seconds per part before no new child starts
PREFILL = {"name": "prefill", "batch": 1, "prompt": 2048, "new_tokens": 1}
BATCH = {"name": "batch", "batch": 16, "prompt": 512, "new_tokens": 32, "mixed": True}
ATTNS = ("sdpa", "eager")
TRUNCATED = 4

# Architectures that no shipped model covers (issue 12): multi-query attention (gpt_bigcode, shape of
# bigcode/gpt_bigcode-santacoder's config.json) and a mixture-of-experts with few experts (a small synthetic
# mixtral: 4 experts, top-2; the shape of no published model, so its rows key on this shape only).
EXTRA: dict[str, dict[str, Any]] = {
    "bigcode/gpt_bigcode-santacoder": {
        "model_type": "gpt_bigcode", "architectures": ["GPTBigCodeForCausalLM"], "n_embd": 2048, "n_head": 16,
        "n_layer": 24, "n_positions": 2048, "n_inner": 8192, "multi_query": True, "vocab_size": 49280,
        "activation_function": "gelu_pytorch_tanh", "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
        "bos_token_id": 49152, "eos_token_id": 49152,
    },
    "synthetic/mixtral-4x1b": {
        "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "hidden_size": 1024,
        "intermediate_size": 3584, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4,
        "num_local_experts": 4, "num_experts_per_tok": 2, "vocab_size": 32000, "max_position_embeddings": 4096,
        "sliding_window": None, "rope_theta": 1e6,
    },
}
PART1 = ["meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1", "google-t5/t5-base", "Qwen/Qwen2-7B",
         "google/gemma-7b", "tiiuae/falcon-7b", "bigscience/bloom-560m", "facebook/opt-350m"]
PART2 = ["meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.2-1B", "google-bert/bert-base-uncased",
         "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "openai-community/gpt2",
         "openai/whisper-small", "bigcode/gpt_bigcode-santacoder", "synthetic/mixtral-4x1b"]
PART3 = ["google-bert/bert-base-uncased", "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
         "openai-community/gpt2"]
DEPTH_MODELS = ["meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1", "google-t5/t5-base"]
TUNE_MODEL = "meta-llama/Llama-2-7b-hf"


def _config(name: str) -> dict[str, Any]:
    from advisor.knowledge import load_knowledge

    if name in EXTRA:
        return dict(EXTRA[name])
    shipped = load_knowledge().shipped_model(name)
    assert shipped is not None, name
    return dict(shipped.config)


def _spec(name: str, tmp: Path) -> Any:
    from advisor.model.resolve import resolve_model

    path = tmp / name.replace("/", "--") / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_config(name)))
    return resolve_model(str(path))


def _labels(spec: Any, env: Any) -> dict[str, dict[str, Any]]:
    """attn -> from_pretrained kwargs of the bf16, unquantized, one-GPU option (labels as the planner writes them)."""
    from advisor.candidate import Candidate
    from advisor.plan.emit import from_pretrained_json

    out = {}
    for attn in ATTNS:
        c = Candidate(attn=attn, dtype="bfloat16", quantization="none", placement="gpu")
        out[c.label()] = from_pretrained_json(c, transformers_version=env.version_of("transformers"))
    return out


def _workloads(positions: int | None) -> dict[str, dict[str, Any]]:
    """The two workloads, prompts cut to the model's learned positions (BERT 512, GPT-2 1,024)."""
    cap = positions or 1 << 30
    return {"prefill": {**PREFILL, "prompt": min(PREFILL["prompt"], cap)},
            "batch": {**BATCH, "prompt": min(BATCH["prompt"], cap - BATCH["new_tokens"])}}


def _time(spec: Any, config: dict[str, Any], kwargs: dict[str, Any], layers: int | None,
          positions: int | None = None) -> dict[str, Any]:
    from advisor.isolation.child import run_child
    from advisor.plan.recommend import auto_class_name

    begin = time.perf_counter()
    result = run_child("advisor.prove.bench_worker", {
        "path": None, "auto_class": auto_class_name(spec), "from_pretrained": kwargs, "generative": spec.generative,
        "repeats": 5, "trust_remote_code": False, "random_config": config, "layers": layers,
        "workloads": _workloads(positions),
    }, 240)
    result["wall_seconds"] = time.perf_counter() - begin
    return result


def _metric(workload: str, generative: bool) -> str:
    return "decode_tokens_per_second" if workload == "batch" and generative else "prefill_tokens_per_second"


def measure(names: list[str], env: Any, tmp: Path, start: float, layers_for: dict[str, int | None],
            log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from advisor.knowledge.measurements import versions_of
    from advisor.model.spec import shape_signature

    versions = versions_of(env).model_dump()
    rows = []
    for name in names:
        spec = _spec(name, tmp)
        config = _config(name)
        layers = layers_for.get(name)
        for label, kwargs in _labels(spec, env).items():
            if time.perf_counter() - start > DEADLINE:
                log.append({"model": name, "candidate": label, "skipped": "part deadline"})
                continue
            result = _time(spec, config, kwargs, layers, spec.max_positions)
            log.append({"model": name, "candidate": label, "layers": layers, **result})
            print(f"{name:<60} {label:<28} {result.get('ok')} {result.get('wall_seconds'):.1f}s "
                  f"{result.get('error') or ''}", flush=True)
            for wl, measured in (result.get("workloads") or {}).items():
                metric = _metric(wl, spec.generative)
                if not measured.get(metric):
                    continue
                prompt = _workloads(spec.max_positions)[wl]["prompt"]
                rows.append({
                    "key": {**versions, "model_type": spec.model_type, "shape": shape_signature(spec), "workload": wl,
                            "candidate": label},
                    "metric": metric, "value": measured[metric], "spread": measured.get("repeat_spread"),
                    "measured_at": datetime.now(timezone.utc).date().isoformat(), "run": RUN, "layers": layers,
                    "model": name, **({"prompt": prompt} if prompt != (PREFILL if wl == "prefill" else BATCH)["prompt"]
                                      else {}),
                })
    return rows


def depth_check(env: Any, tmp: Path, start: float, log: list[dict[str, Any]]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Full depth against TRUNCATED layers: does the sdpa/eager order (and its ratio) survive? Also returns the
    full-depth rows, which are shipped rows like any other."""
    checks = []
    shipped = []
    for name in DEPTH_MODELS:
        spec = _spec(name, tmp)
        full = measure([name], env, tmp, start, {}, log)
        cut = measure([name], env, tmp, start, {name: TRUNCATED}, log)
        for wl in ("prefill", "batch"):
            def order(rows: list[dict[str, Any]], wl: str = wl) -> list[str]:
                return [r["key"]["candidate"] for r in sorted((r for r in rows if r["key"]["workload"] == wl),
                                                             key=lambda r: -r["value"])]

            def ratio(rows: list[dict[str, Any]], wl: str = wl) -> float | None:
                vals = {r["key"]["candidate"].split(" /")[0]: r["value"] for r in rows if r["key"]["workload"] == wl}
                return vals["sdpa"] / vals["eager"] if {"sdpa", "eager"} <= set(vals) else None

            checks.append({"model": name, "model_type": spec.model_type, "workload": wl, "full": order(full),
                           "truncated": order(cut), "layers": [spec.num_layers, TRUNCATED],
                           "sdpa_over_eager": [ratio(full), ratio(cut)],
                           "same_ranking": bool(order(full)) and order(full) == order(cut)})
        shipped += full
    return checks, shipped


def tune_7b(out: Path) -> dict[str, Any]:
    """`advisor tune` on a 7B decoder with its default budget, as a user runs it."""
    begin = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "advisor", "tune", TUNE_MODEL, "--format", "json",
                           "-o", str(out / "tune-llama-2-7b.json")], capture_output=True, text=True, timeout=200,
                          check=False)
    (out / "tune-llama-2-7b.log").write_text(proc.stdout + proc.stderr)
    report = out / "tune-llama-2-7b.json"
    if report.is_file():
        data = json.loads(report.read_text())
        print("tune:", proc.returncode, json.dumps({k: data.get(k) for k in ("elapsed_seconds", "ranking", "failed",
                                                                            "skipped", "static_choice", "winner")}),
              flush=True)
    return {"command": f"advisor tune {TUNE_MODEL}", "exit": proc.returncode,
            "wall_seconds": time.perf_counter() - begin, "stderr": proc.stderr[-2000:]}


def fidelity(out: Path) -> list[dict[str, Any]]:
    """Cosine similarity of the logits and top-1 agreement against fp32, for bf16/fp16/int8/nf4 (random weights)."""
    import torch
    import transformers

    from advisor.prove.fidelity import compare

    rows = []
    folder = Path(tempfile.mkdtemp(prefix="fidelity-model-"))
    for name in ("meta-llama/Llama-3.2-1B",):
        config = _config(name)
        model_type = config.pop("model_type")
        config.pop("transformers_version", None)
        cfg = transformers.AutoConfig.for_model(model_type, **config)
        torch.manual_seed(0)
        with torch.device("cuda"):
            ref_model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        ref_model.save_pretrained(folder)
        ids = torch.randint(3, cfg.vocab_size - 1, (4, 128), generator=torch.Generator().manual_seed(0)).cuda()
        with torch.inference_mode():
            ref = ref_model(input_ids=ids).logits.float()
        del ref_model
        torch.cuda.empty_cache()
        options: dict[str, dict[str, Any]] = {"bfloat16": {"dtype": torch.bfloat16}, "float16": {"dtype": torch.float16}}
        try:
            from transformers import BitsAndBytesConfig

            options["int8"] = {"dtype": torch.bfloat16, "quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
            options["nf4"] = {"dtype": torch.bfloat16, "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)}
        except ImportError:
            pass
        for label, kwargs in options.items():
            try:
                m = transformers.AutoModelForCausalLM.from_pretrained(folder, device_map="cuda", **kwargs).eval()
                with torch.inference_mode():
                    got = m(input_ids=ids).logits.float()
                row = {"model": name, "weights": "random", "option": label, **compare(ref, got)}
                if "quantization_config" in kwargs:  # what the smoke test judges: against its own weights
                    m.dequantize()
                    with torch.inference_mode():
                        row["against_dequantized"] = compare(m(input_ids=ids).logits.float(), got)
                rows.append(row)
                del m
                torch.cuda.empty_cache()
            except Exception as exc:  # noqa: BLE001 - a failed option is a row of the result
                rows.append({"model": name, "option": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print(rows[-1], flush=True)
    return rows


RUN = ""


def main() -> None:
    global RUN
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", type=int, choices=(1, 2, 3, 4))
    parser.add_argument("--merge", nargs=2, metavar=("OUT_DIR", "TARGET"))
    parser.add_argument("--dry-run", action="store_true",
                        help="check the plumbing on any machine: gpt2 at 1 layer, tiny workloads, no tune/fidelity")
    parser.add_argument("out", nargs="?", type=Path)
    args = parser.parse_args()
    if args.merge:
        merge(Path(args.merge[0]), Path(args.merge[1]))
        return
    from advisor.probe.target import TargetSpec, resolve_target

    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    RUN = f"h100_measure-part{args.part}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    env = resolve_target(TargetSpec(import_checks=False))
    tmp = out / "configs"
    log: list[dict[str, Any]] = []
    result: dict[str, Any] = {"run": RUN, "command": f"python benchmarks/h100_measure.py --part {args.part} $OUT",
                              "workloads": {"prefill": PREFILL, "batch": BATCH}, "rows": [], "depth_checks": []}
    if args.dry_run:
        PREFILL.update(prompt=16)
        BATCH.update(batch=2, prompt=8, new_tokens=3)
        DEPTH_MODELS[:] = ["openai-community/gpt2"]
        PART1[:] = ["openai-community/gpt2", "synthetic/mixtral-4x1b"]
        PART2[:] = []
    if args.part == 4:  # the smoke fidelity figures alone
        result["fidelity"] = fidelity(out)
    elif args.part == 3:  # re-run: models that failed at 2,048 tokens (positions), and tune on the console
        result["rows"] += measure(PART3, env, tmp, start, {}, log)
        if not args.dry_run:
            result["tune"] = tune_7b(out)
    elif args.part == 1:
        result["depth_checks"], result["rows"] = depth_check(env, tmp, start, log)
        # dedupe: the depth models' full-depth rows are already in; measure the rest of part 1
        result["rows"] += measure([n for n in PART1 if n not in DEPTH_MODELS], env, tmp, start, {}, log)
    else:
        if not args.dry_run:  # first: they have no deadline of their own
            result["tune"] = tune_7b(out)
            result["fidelity"] = fidelity(out)
        result["rows"] += measure(PART2, env, tmp, start, {}, log)
        if not args.dry_run:  # T5 failed in part 1 (the worker passed no decoder ids); its depth check runs here
            DEPTH_MODELS[:] = ["google-t5/t5-base"]
            checks, full = depth_check(env, tmp, start, log)
            result["depth_checks"] += checks
            result["rows"] += full
    result["log"] = log
    result["elapsed_seconds"] = time.perf_counter() - start
    (out / f"h100-measure-part{args.part}.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"part {args.part}: {len(result['rows'])} rows in {result['elapsed_seconds']:.0f} s", flush=True)


def merge(folder: Path, target: Path) -> None:
    """Both parts into data/measurements/h100.json (rows with their run; depth checks; the tune summary)."""
    parts = [json.loads(p.read_text()) for p in sorted(folder.glob("h100-measure-part*.json"))]
    rows = [r for p in parts for r in p["rows"]]
    data = {
        "schema_version": 1,
        "description": "Measured by benchmarks/h100_measure.py (two parts) on one H100; random weights on the device.",
        "runs": [{"run": p["run"], "command": p["command"], "elapsed_seconds": p["elapsed_seconds"],
                  "workloads": p["workloads"]} for p in parts],
        "rows": [{k: v for k, v in r.items() if k not in ("model", "prompt")} for r in rows],
        "prompts_cut_to_positions": {f"{r['model']} {r['key']['workload']}": r["prompt"] for r in rows if "prompt" in r},
        "models": dict(sorted({f"{r['key']['model_type']} {r['key']['shape']}": r["model"] for r in rows}.items())),
        "depth_checks": [c for p in parts for c in p.get("depth_checks", [])],
    }
    target.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(rows)} rows, {len(data['depth_checks'])} depth checks -> {target}")
    for r in rows:
        print(f"  {r['model']:<60} {r['key']['workload']:<8} {r['key']['candidate']:<26} {r['value']:>12.1f} "
              f"spread {100 * (r['spread'] or 0):.1f}%")


if __name__ == "__main__":
    main()
