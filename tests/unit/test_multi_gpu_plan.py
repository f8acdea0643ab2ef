"""A two-card plan checked against accelerate's own placement of the same model on the meta device.

No GPU is needed: accelerate's `infer_auto_device_map` only reads parameter sizes. If the plan's
`max_memory` caps are right, accelerate puts every module on the two GPUs (nothing on "cpu" or "disk").
"""

from __future__ import annotations

import pytest

from advisor.model.resolve import resolve_model
from advisor.plan.recommend import make_plan
from advisor.probe.target import TargetSpec, resolve_target


@pytest.mark.parametrize(
    "model_id, gpu, quantize",
    [
        ("meta-llama/Meta-Llama-3-8B", "T4", "none"),  # 15 GiB of fp16 weights: needs both 15 GiB cards
        ("meta-llama/Llama-2-70b-hf", "A100-80GB", "none"),  # 128 GiB of bf16 weights over 2 x 80 GiB
    ],
)
def test_plan_for_two_cards_matches_accelerate(model_id: str, gpu: str, quantize: str) -> None:
    import torch
    import transformers
    from accelerate import infer_auto_device_map
    from accelerate.utils import compute_module_sizes
    from transformers import AutoConfig

    spec = resolve_model(model_id)
    env = resolve_target(TargetSpec(gpus=[gpu, gpu]))
    rec = make_plan(spec, env)
    assert rec.chosen is not None and rec.chosen.candidate.placement == "multi-gpu"
    assert rec.chosen.candidate.quantization == quantize
    fp = rec.from_pretrained
    assert fp is not None and fp["device_map"] == "auto"
    caps = {int(k): v for k, v in fp["max_memory"].items()}

    from advisor.knowledge import load_knowledge

    config = dict(load_knowledge().shipped_model(model_id).config)  # type: ignore[union-attr]
    model_type = config.pop("model_type")
    config.pop("transformers_version", None)
    dtype = getattr(torch, fp["dtype"])
    with torch.device("meta"):
        model = getattr(transformers, spec.architecture)(AutoConfig.for_model(model_type, **config))  # type: ignore[arg-type]
    device_map = infer_auto_device_map(
        model, max_memory=dict(caps), no_split_module_classes=model._no_split_modules, dtype=dtype
    )
    placed = set(device_map.values())
    assert placed <= {0, 1} and placed == {0, 1}, f"accelerate offloaded: {placed}"
    sizes = compute_module_sizes(model, dtype=dtype)
    per_gpu = {d: sum(sizes[name] for name, dev in device_map.items() if dev == d) for d in (0, 1)}
    total = sum(per_gpu.values())
    # the planner's weight estimate is the same sum accelerate places, within 1%
    assert abs(total - rec.chosen.memory.weights_bytes) / total < 0.01
    for device, used in per_gpu.items():
        assert used <= int(caps[device].removesuffix("MiB")) * 2**20
