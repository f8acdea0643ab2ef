"""Regret and memory-prediction benchmarks on this machine's GPU; writes Markdown and JSON to an output folder.

Usage: python benchmarks/regret_memory.py OUT_DIR [--repeats 5] [--timeout 150] [--models llama-3.2-1b llama-3-8b bert-base]
Models (random weights, realistic shapes, built with benchmarks/make_model.py): Llama-3.2-1B, Llama-3-8B and
BERT-base.
For the decoders: the three workloads of docs/benchmarks (batch-1 decode with a short prompt, batch-1 with a
4096-token prompt, batch-16 decode with mixed prompt lengths and padding); for the 1B every unquantized candidate
(the 8B: SDPA bf16 and fp32, eager bf16) and the SDPA bf16 8-bit and 4-bit candidates; two baselines, a bare
from_pretrained on the GPU (transformers' defaults) and the guide's advice (fp16 + FlashAttention-2); and the
advisor's choice run again last, to measure run-to-run noise. BERT-base: a batch-32, 128-token forward.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.bench import WORKLOADS, Workload, run_bench  # noqa: E402
from advisor.model import resolve_model  # noqa: E402
from advisor.render import OutputFormat, render  # noqa: E402
from advisor.targets import TargetSpec, resolve_target  # noqa: E402

BASELINES = {
    "bare from_pretrained(model, device_map='cuda:0')": {"device_map": "cuda:0"},
    "guide: fp16 + flash_attention_2": {"dtype": "float16", "attn_implementation": "flash_attention_2", "device_map": "cuda:0"},
}
# file-name slug -> the shipped config the random-weight model is built from
MODELS = {
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "bert-base": "google-bert/bert-base-uncased",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=150)
    parser.add_argument("--models", nargs="*", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--quick", action="store_true",
                        help="1B: only sdpa/eager bf16, sdpa fp16/fp32 and the 8-bit/4-bit SDPA candidates (no flex)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = resolve_target(TargetSpec())
    runs = [
        ("llama-3.2-1b", [WORKLOADS["decode"], WORKLOADS["prefill"], WORKLOADS["batch"]],
         lambda c: c.quantization == "none" and (c.attn != "flex_attention" or c.dtype == "bfloat16")
         or (c.attn == "sdpa" and c.dtype == "bfloat16")),
        ("llama-3-8b", [WORKLOADS["decode"], WORKLOADS["prefill"], WORKLOADS["batch"]],
         lambda c: c.attn == "sdpa" and c.dtype != "float16"
         or (c.attn == "eager" and c.dtype == "bfloat16" and c.quantization == "none")),
        ("bert-base", [Workload(name="prefill", batch=32, prompt=128, new_tokens=0)],
         lambda c: c.quantization == "none" and c.attn != "flex_attention"),
    ]
    if args.quick:
        runs[0] = (*runs[0][:2], lambda c: (c.attn == "sdpa" and c.dtype == "bfloat16")
                   or (c.quantization == "none" and (c.attn == "sdpa" or c.dtype == "bfloat16") and c.attn != "flex_attention"))
    for slug, workloads, select in [r for r in runs if r[0] in args.models]:
        folder = Path("/tmp") / slug
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_model.py"), str(folder), MODELS[slug]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        model = resolve_model(str(folder))
        baselines = BASELINES if model.generative else {}
        reports = run_bench(model, env, workloads, repeats=args.repeats, timeout=args.timeout, baselines=baselines,
                            select=select, control=True, progress=lambda i, n, label: print(f"  [{i}/{n}] {label}", flush=True))
        for report in reports:
            name = f"{slug}-{report.workload.name}"
            (args.out / f"{name}.json").write_text(report.model_dump_json(indent=1))
            (args.out / f"{name}.md").write_text(render(report, OutputFormat.MARKDOWN, kind="bench"))
            print(render(report, OutputFormat.TEXT, kind="bench"), flush=True)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
