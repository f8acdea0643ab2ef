"""Measured peak memory of relatives of a shipped model at the planner's shape, against the scaled formula (issue 27).

Usage (GPU machine, repository root, transformers 5.25 on the path): python benchmarks/h100_relatives.py OUT.json
Then, on any machine with transformers 5.25: python benchmarks/h100_relatives.py --compare OUT.json

The relatives are Llama-3-8B's shipped config (data/models) with other sizes, never fitted or simulated by the
precompute: a fine-tune's vocabulary (+77 tokens), narrower (2048 wide, 16 heads) and wider (5120 wide, 40 heads,
a 32000 vocabulary), each built on the GPU from that config dict with random bf16 weights, sdpa, 6 or 8 layers (the
formula extrapolates over the repeating layer exactly, and so counts the layers measured). The planner's shape is
batch 1 and a prefill of 4096 tokens (`recommend`/`check` size that: generate() with one new token). Measured:
torch.cuda.max_memory_allocated() from a reset after loading (the weights and the cuBLAS workspace are live, as in
the formula's peak). Compared: `formula_store.relative` on the H100 target (sm90), as the planner asks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = 4096
RELATIVES: dict[str, dict[str, Any]] = {
    "llama3-8b-vocab+77": {"vocab_size": 128256 + 77, "num_hidden_layers": 6},
    "llama3-8b-narrow": {"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 8,
                         "intermediate_size": 5632, "num_hidden_layers": 8},
    "llama3-8b-wide": {"hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8,
                       "intermediate_size": 13824, "vocab_size": 32000, "num_hidden_layers": 6},
}


def _config(name: str) -> dict[str, Any]:
    base = json.loads((ROOT / "data" / "models" / "meta-llama--Meta-Llama-3-8B.json").read_text())["config"]
    return {**base, **RELATIVES[name]}


def measure(out: Path) -> None:
    import torch
    import transformers

    torch.matmul(torch.ones(8, 8, device="cuda"), torch.ones(8, 8, device="cuda"))  # the cuBLAS workspace, once
    rows = []
    for name in RELATIVES:
        config = _config(name)
        cfg = transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k not in ("transformers_version",)})
        with torch.device("cuda"):
            model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        model.eval()
        ids = torch.zeros((1, PROMPT), dtype=torch.long, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False, num_beams=1, pad_token_id=0)
        torch.cuda.synchronize()
        rows.append({"name": name, "config": config, "prompt": PROMPT,
                     "peak_memory_bytes": int(torch.cuda.max_memory_allocated())})
        print(json.dumps({k: rows[-1][k] for k in ("name", "peak_memory_bytes")}), flush=True)
        del model
        torch.cuda.empty_cache()
    out.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                               "transformers": transformers.__version__, "rows": rows}, indent=1) + "\n")


def compare(path: Path) -> None:
    from advisor.estimate import formula_store
    from advisor.estimate.adapter import _simulator_stamp

    data = json.loads(path.read_text())
    print(f"{data['device']}, torch {data['torch']}, transformers {data['transformers']}\n")
    print("| relative | measured GiB | scaled formula GiB | error |\n|---|---|---|---|")
    for row in data["rows"]:
        key = formula_store.formula_key(row["config"], dict(
            architecture="LlamaForCausalLM", dtype="bfloat16", quantization="none", padded=False, attn="sdpa",
            device="cuda", capability=(9, 0), sdpa_backends=("flash", "efficient", "math")))
        got = formula_store.relative(key, _simulator_stamp(), batch=1, prompt=row["prompt"], seq_len=row["prompt"])
        measured = row["peak_memory_bytes"]
        if got is None:
            print(f"| {row['name']} | {measured / 2**30:.3f} | not answered | |")
            continue
        print(f"| {row['name']} | {measured / 2**30:.3f} | {got.peak_bytes / 2**30:.3f} | "
              f"{(got.peak_bytes - measured) / measured:+.2%} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    compare(args.path) if args.compare else measure(args.path)
