#!/usr/bin/env python
"""Does flex_attention compile on the CPU (torch Inductor's C++ backend) for a padded batch? Evidence for ATTN014.

Why: transformers runs flex_attention through torch.compile; on the CPU, Inductor generates and compiles C++.
`recommend --cpu` used to offer flex_attention without anyone having seen it compile. This script builds a tiny
Llama (save_pretrained, no download), loads it with attn_implementation="flex_attention" on the CPU and runs
unpadded and left-padded batches (forward and a 4-token generate, float32 and bfloat16), each in a fresh child
process (a fresh Inductor cache is not forced: the first case pays the compile), and records what happened.

    python benchmarks/flex_cpu_compile.py -o data/flex_cpu/torch-<torch version>.json   (rule ATTN014 reads these)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import sys, torch, transformers
folder, padded, dtype, mode = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
model = transformers.AutoModelForCausalLM.from_pretrained(
    folder, attn_implementation="flex_attention", dtype=getattr(torch, dtype))
ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7, 8, 9, 10, 11, 12]])
mask = torch.ones_like(ids)
if padded:
    mask[1, :3] = 0  # left padding on the second row
with torch.no_grad():
    if mode == "generate":
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
        print("OK", tuple(out.shape))
    else:
        out = model(input_ids=ids, attention_mask=mask)
        print("OK", tuple(out.logits.shape))
"""
CASES = (  # (dtype, padded, mode): what recommend --cpu would run, then what smoke/generation runs
    ("float32", False, "forward"),
    ("float32", True, "forward"),
    ("float32", True, "generate"),
    ("bfloat16", True, "forward"),
    ("bfloat16", True, "generate"),
)


def build(folder: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=100, max_position_embeddings=64, pad_token_id=0,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


def main() -> int:
    import torch
    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        for dtype, padded, mode in CASES:
            started = time.time()
            try:
                proc = subprocess.run([sys.executable, "-c", CHILD, tmp, "1" if padded else "0", dtype, mode],
                                      capture_output=True, cwd=tmp, check=False,
                                      text=True, timeout=args.timeout)
                ok = proc.returncode == 0 and "OK" in proc.stdout
                tail = (proc.stdout + proc.stderr).strip().splitlines()
                error = None if ok else next((line for line in reversed(tail) if "Error" in line), tail[-1] if tail else "")
            except subprocess.TimeoutExpired:
                ok, error = False, f"timed out after {args.timeout} s"
            results.append({"dtype": dtype, "padded": padded, "mode": mode, "compiles": ok, "seconds": round(time.time() - started, 1),
                            "error": (error or None) and error[-600:]})
    record = {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "compiles": all(r["compiles"] for r in results), "runs": results,
        "command": f"python benchmarks/flex_cpu_compile.py -o {args.output}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
