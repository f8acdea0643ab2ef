"""Pre-quantized checkpoints on a GPU (issue 17, QUANT009): the plan's weight figure against what loading takes.

Usage: python benchmarks/prequantized_memory.py SRC_DIR OUT_DIR RESULT.json
SRC_DIR is a bf16 checkpoint (benchmarks/make_model.py). It is quantized with bitsandbytes (NF4 with double
quantization, and LLM.int8) by from_pretrained and saved with save_pretrained under OUT_DIR; then, per saved
checkpoint, the advisor plans it (`recommend`: no quantization_config, weights at the stored bits) and
from_pretrained loads it with exactly the plan's kwargs, and torch.cuda.memory_allocated() after the load is
compared with the plan's weights_bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _quantize(src: Path, out: Path, config: Any) -> None:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(src, quantization_config=config, device_map="cuda:0",
                                                              dtype=torch.bfloat16)
    model.save_pretrained(out)
    del model
    torch.cuda.empty_cache()


def _measure(folder: Path) -> dict[str, Any]:
    import torch
    import transformers

    plan = json.loads(subprocess.run([sys.executable, "-m", "advisor", "recommend", str(folder), "--format", "json"],
                                     check=True, capture_output=True, text=True).stdout)
    kwargs = dict(plan["from_pretrained"])
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    dtype = getattr(torch, kwargs.pop("dtype"))
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    loaded = torch.cuda.memory_allocated() - before
    kinds: dict[str, int] = {}
    for module in model.modules():
        if "Linear" in type(module).__name__:
            kinds[type(module).__name__] = kinds.get(type(module).__name__, 0) + 1
    del model
    torch.cuda.empty_cache()
    planned = int(plan["memory"]["weights_bytes"])
    return {
        "checkpoint_quantization": plan["model"]["checkpoint_quantization"],
        "from_pretrained": plan["from_pretrained"],
        "planned_weights_bytes": planned,
        "allocated_after_load_bytes": int(loaded),
        "error": round(planned / loaded - 1, 4),
        "linear_modules": kinds,
    }


def main() -> None:
    import torch
    import transformers
    from transformers import BitsAndBytesConfig

    src, out, result = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    configs = {
        "bnb-nf4-double": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                             bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16),
        "bnb-int8": BitsAndBytesConfig(load_in_8bit=True),
    }
    rows = {}
    for name, config in configs.items():
        _quantize(src, out / name, config)
        rows[name] = _measure(out / name)
        print(name, json.dumps(rows[name]), flush=True)
    import bitsandbytes

    result.write_text(json.dumps({
        "command": f"python benchmarks/prequantized_memory.py {src} {out} {result.name}",
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
        "bitsandbytes": bitsandbytes.__version__, "checkpoints": rows,
    }, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
