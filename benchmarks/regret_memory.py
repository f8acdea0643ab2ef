"""Regret and memory-prediction benchmarks on this machine's GPU; writes Markdown and JSON to an output folder.

Usage: python benchmarks/regret_memory.py OUT_DIR [--part regret|quantized] [--repeats 5] [--timeout 150]
                                         [--models llama-3.2-1b llama-3-8b bert-base]
Models (random weights, realistic shapes, built with benchmarks/make_model.py): Llama-3.2-1B, Llama-3-8B and
BERT-base. Decoders run three workloads (batch-1 decode with a short prompt, batch-1 with a 4096-token prompt,
batch-16 decode with mixed prompt lengths and padding); BERT-base a batch-32, 128-token forward.
--part regret (one model fits a 10-minute call): the unquantized candidates in REGRET, two baselines (a bare
from_pretrained on the GPU, and the guide's fp16 + FlashAttention-2); with --rounds N each runs in N processes,
round-robin, otherwise the advisor's choice runs again last; either way the report gives the run-to-run noise.
--part quantized: bitsandbytes 8-bit and 4-bit beside the advisor's choice, for the memory prediction; their
speed is reported but they are not part of the regret run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.candidate import Candidate  # noqa: E402
from advisor.model.resolve import resolve_model  # noqa: E402
from advisor.probe.target import TargetSpec, resolve_target  # noqa: E402
from advisor.prove.bench import WORKLOADS, Workload, run_bench  # noqa: E402
from advisor.render import OutputFormat, render  # noqa: E402

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


def slug_of(path: Path) -> str:
    """The MODELS key a result file belongs to, from its name (`llama-3-8b-int8-decode.json` -> `llama-3-8b`)."""
    return next(s for s in MODELS if path.name.startswith(s + "-"))


DECODER = [WORKLOADS["decode"], WORKLOADS["prefill"], WORKLOADS["batch"]]
WORKLOADS_OF = {"llama-3.2-1b": DECODER, "llama-3-8b": DECODER,
                "bert-base": [Workload(name="prefill", batch=32, prompt=128, new_tokens=0)]}
# The regret part: unquantized candidates that can compete on speed, sized to fit one 10-minute call. Eager is
# measured on the 8B and BERT (and was 12-45% slower than SDPA on the 1B in the first H100 run), so the 1B keeps
# SDPA in each dtype and flex_attention; the 8B drops fp16 (the same kernels as bf16) and flex_attention.
REGRET: dict[str, Callable[[Candidate], bool]] = {
    "llama-3.2-1b": lambda c: c.quantization == "none" and (
        c.attn == "sdpa" or c.attn == "flex_attention" and c.dtype == "bfloat16"),
    "llama-3-8b": lambda c: c.quantization == "none" and (
        c.attn == "sdpa" and c.dtype != "float16" or c.attn == "eager" and c.dtype == "bfloat16"),
    "bert-base": lambda c: c.quantization == "none" and c.attn != "flex_attention",
}


def quantized(c: Candidate) -> bool:
    """The memory part: bitsandbytes 8-bit and 4-bit with SDPA (they decode 1.2-6.5x slower, so never the best)."""
    return c.attn == "sdpa" and c.dtype == "bfloat16" and c.quantization != "none"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=150)
    parser.add_argument("--rounds", type=int, default=1, help="processes per candidate, round-robin (best kept)")
    parser.add_argument("--models", nargs="*", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--part", choices=("regret", "quantized"), default="regret",
                        help="regret: unquantized candidates and both baselines; quantized: the 8-bit and 4-bit "
                             "candidates beside the advisor's choice")
    parser.add_argument("--quantization", choices=("8bit", "4bit"), help="--part quantized: only this one")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = resolve_target(TargetSpec())
    for slug in args.models:
        folder = Path("/tmp") / slug
        if not (folder / "config.json").exists():
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_model.py"), str(folder), MODELS[slug]],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        model = resolve_model(str(folder))
        regret = args.part == "regret"
        reports = run_bench(
            model, env, WORKLOADS_OF[slug], repeats=args.repeats, timeout=args.timeout,
            baselines=BASELINES if regret and model.generative else {},
            select=REGRET[slug] if regret else lambda c: quantized(c) and args.quantization in (None, c.quantization),
            control=regret and args.rounds == 1, rounds=args.rounds,
            progress=lambda i, n, label: print(f"  [{i}/{n}] {label}", flush=True),
        )
        for report in reports:
            name = f"{slug}-{report.workload.name}" if regret else f"{slug}-quantized-{report.workload.name}"
            (args.out / f"{name}.json").write_text(report.model_dump_json(indent=1))
            (args.out / f"{name}.md").write_text(render(report, OutputFormat.MARKDOWN))
            print(render(report, OutputFormat.TEXT), flush=True)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
