"""What the installed transformers does with a pre-quantized MXFP4 checkpoint (gpt-oss) where triton is missing,
executed (issue 28: "fallbacks treated as failures"; data/quantizer_acceptance.json records the quantizer's
verdict per release and condition, this loads a real checkpoint on one of them).

Usage: python scripts/check_mxfp4_dequant.py OUT.json

A tiny gpt-oss is written as an MXFP4 checkpoint by hand, as the released gpt-oss checkpoints are stored: each
expert projection as `<proj>_blocks` (uint8, two FP4 e2m1 values a byte, 32 values a block) and `<proj>_scales`
(uint8 exponents, bias 127), the rest in bf16, `quantization_config` {"quant_method": "mxfp4"}. It is loaded with
`from_pretrained` on this CPU (no triton here: the quantizer dequantizes to bf16) and run once; the record says
whether it loaded, the experts' dtype, the warning logged, whether the loaded expert weights equal the ones
decoded by hand here (an independent decoder: e2m1 table, low nibble first, times 2**(scale-127)), and the
logits' largest difference from a bf16 model holding those decoded weights.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[4], file=sys.stderr)
        return 2
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    config = GptOssConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=16, vocab_size=256, num_local_experts=4,
                          num_experts_per_tok=2, layer_types=["full_attention", "full_attention"])
    reference = GptOssForCausalLM(config).to(torch.bfloat16).eval()
    lut = torch.tensor(E2M1)
    tensors: dict[str, torch.Tensor] = {}
    state = reference.state_dict()
    for name, param in state.items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            experts, rows_in, cols_out = param.shape  # stored (E, in, out); MXFP4 packs (E, out, in / 32, 16)
            blocks = torch.randint(0, 256, (experts, cols_out, rows_in // 32, 16), dtype=torch.uint8)
            scales = torch.randint(124, 128, (experts, cols_out, rows_in // 32), dtype=torch.uint8)
            lo, hi = lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]
            values = torch.stack([lo, hi], dim=-1).reshape(experts, cols_out, rows_in // 32, 32)
            decoded = (values * torch.pow(2.0, scales.float() - 127)[..., None]).reshape(experts, cols_out, rows_in)
            state[name].copy_(decoded.transpose(1, 2).to(torch.bfloat16))
            tensors[name + "_blocks"], tensors[name + "_scales"] = blocks, scales
        else:
            tensors[name] = param.contiguous()
    record: dict[str, object] = {"torch": torch.__version__, "transformers": transformers.__version__,
                                 "cuda_available": torch.cuda.is_available()}
    try:
        import triton  # noqa: F401

        record["triton"] = True
    except ImportError:
        record["triton"] = False
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            messages.append(entry.getMessage())

    transformers.logging.get_logger("transformers").addHandler(Keep())
    with tempfile.TemporaryDirectory() as folder:
        data = config.to_dict()
        data["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
        data["architectures"] = ["GptOssForCausalLM"]
        Path(folder, "config.json").write_text(json.dumps(data))
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(Path(folder, "model.safetensors")),
                  metadata={"format": "pt"})
        record["checkpoint_bytes"] = Path(folder, "model.safetensors").stat().st_size
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
            experts = model.model.layers[0].mlp.experts
            ids = torch.tensor([[1, 5, 9, 42, 7]])
            with torch.no_grad():
                got, want = model(ids).logits.float(), reference(ids).logits.float()
            same = all(torch.equal(dict(model.named_parameters())[n].detach(), state[n])
                       for n in state if n.endswith(("experts.gate_up_proj", "experts.down_proj")))
            record.update(loaded=True, experts=f"{type(experts).__module__}.{type(experts).__name__}",
                          experts_dtype=str(experts.gate_up_proj.dtype).removeprefix("torch."),
                          experts_equal_hand_decoded=same,
                          weights_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
                          max_abs_diff_vs_decoded=float((got - want).abs().max()))
        except Exception as exc:  # noqa: BLE001 - the verdict is what happened
            record.update(loaded=False, error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
    record["warnings"] = [m for m in messages if "MXFP4" in m or "dequantiz" in m.lower()]
    Path(argv[0]).write_text(json.dumps({"generated_by": "python scripts/check_mxfp4_dequant.py " + argv[0],
                                         "result": record}, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
