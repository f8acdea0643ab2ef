"""Build a model of realistic shape from a shipped config, with random weights, and save_pretrained it.

Usage: python benchmarks/make_model.py OUT_DIR [MODEL_ID] [--dtype bfloat16] [--device cuda] [--layers N]
No download: the config comes from data/models/. The weights are random, so outputs are meaningless but
shapes, memory and speed are those of the real model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch
    import transformers
    from transformers import AutoConfig

    from advisor.knowledge import load_knowledge

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("model", nargs="?", default="meta-llama/Llama-3.2-1B")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, help="keep only N decoder layers (the per-layer shape is unchanged)")
    args = parser.parse_args()
    shipped = load_knowledge().shipped_model(args.model)
    if shipped is None:
        raise SystemExit(f"{args.model} is not a shipped config")
    config = dict(shipped.config)
    model_type = config.pop("model_type")
    config.pop("transformers_version", None)
    if args.layers:
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if key in config:
                config[key] = args.layers
    hf_config = AutoConfig.for_model(model_type, **config)
    torch.manual_seed(0)
    cls = getattr(transformers, (config.get("architectures") or ["AutoModel"])[0])
    torch.set_default_dtype(getattr(torch, args.dtype))
    with torch.device(args.device):
        model = cls(hf_config)
    model.save_pretrained(args.out)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters to {args.out}")


if __name__ == "__main__":
    main()
