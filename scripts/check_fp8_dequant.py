"""What the installed transformers does with a pre-quantized FP8 checkpoint on a machine without a GPU, executed
(issue 28: "fallbacks treated as failures": transformers 5.x dequantizes FP8 to bf16 where the hardware cannot run
it, so the load works at twice the weight memory).

Usage: python scripts/check_fp8_dequant.py OUT.json

A tiny Llama is written as a block-wise FP8 checkpoint by hand (float8_e4m3fn weights with their
`weight_scale_inv` per 128 x 128 block, `quantization_config` {"quant_method": "fp8", "weight_block_size":
[128, 128]}, as DeepSeek-V3 / Qwen3 FP8 checkpoints are stored), loaded with `from_pretrained` on the CPU, and run
once; the record says whether it loaded, the dtype and class of a linear layer's weight, the warning transformers
logged, the weights' bytes, and the largest difference of the logits from the same weights dequantized by hand.
On a GPU below compute capability 8.9 the same quantizer takes the same branch (quantizer_finegrained_fp8.py); that
path needs CUDA and is read, not run, here.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[5], file=sys.stderr)
        return 2
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, torch_dtype="bfloat16")
    reference = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    block = 128
    tensors: dict[str, torch.Tensor] = {}
    for name, param in reference.state_dict().items():
        if name.endswith(".weight") and param.dim() == 2 and ".layers." in name and "norm" not in name:
            out_f, in_f = param.shape
            w = param.float().reshape(out_f // block, block, in_f // block, block)
            scale = w.abs().amax(dim=(1, 3)).clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
            q = (w / scale[:, None, :, None]).to(torch.float8_e4m3fn)
            tensors[name] = q.reshape(out_f, in_f).contiguous()
            tensors[name.removesuffix("weight") + "weight_scale_inv"] = scale.contiguous()
            dequant = (q.float() * scale[:, None, :, None]).reshape(out_f, in_f).to(torch.bfloat16)
            reference.state_dict()[name].copy_(dequant)  # the reference runs the dequantized weights
        else:
            tensors[name] = param.contiguous()
    record: dict[str, object] = {"torch": torch.__version__, "transformers": transformers.__version__,
                                 "cuda_available": torch.cuda.is_available()}
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            messages.append(entry.getMessage())

    transformers.logging.get_logger("transformers").addHandler(Keep())
    with tempfile.TemporaryDirectory() as folder:
        data = config.to_dict()
        data["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic",
                                       "weight_block_size": [block, block]}
        data["architectures"] = ["LlamaForCausalLM"]
        Path(folder, "config.json").write_text(json.dumps(data))
        save_file(tensors, str(Path(folder, "model.safetensors")), metadata={"format": "pt"})
        record["checkpoint_bytes"] = Path(folder, "model.safetensors").stat().st_size
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
            proj = model.model.layers[0].mlp.up_proj
            ids = torch.tensor([[1, 5, 9, 42, 7]])
            with torch.no_grad():
                got, want = model(ids).logits.float(), reference(ids).logits.float()
            record.update(loaded=True, layer=f"{type(proj).__module__}.{type(proj).__name__}",
                          weight_dtype=str(proj.weight.dtype).removeprefix("torch."),
                          weights_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
                          max_abs_diff_vs_dequantized=float((got - want).abs().max()))
        except Exception as exc:  # noqa: BLE001 - the verdict is what happened
            record.update(loaded=False, error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
    record["warnings"] = [m for m in messages if "FP8" in m or "dequantiz" in m.lower()]
    Path(argv[0]).write_text(json.dumps({"generated_by": "python scripts/check_fp8_dequant.py " + argv[0],
                                         "result": record}, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
