"""Fidelity of a smoke-test output against the fp32 reference: metrics that mean the same on random and trained weights.

Max |diff| scales with the logits: random weights give near-zero-mean noise whose relative error under NF4 is
larger than on a trained model, so a max-|diff| tolerance rejected the only viable 4-bit plan of a model
(issue 12). The direction of each position's output vector (cosine similarity) and the argmax (top-1 agreement)
do not depend on that scale. Thresholds per dtype and quantization: docs/smoke-fidelity.md (measured).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIDELITY", "compare", "judge"]

# key -> (minimum mean cosine similarity, minimum top-1 agreement); docs/smoke-fidelity.md says where each comes from
FIDELITY: dict[str, tuple[float, float]] = {
    "float32": (0.9999, 0.99),
    "float16": (0.999, 0.90),
    "bfloat16": (0.999, 0.85),
    "8bit": (0.99, 0.70),  # provisional until benchmarks/h100_measure.py --part 2 records int8 on the H100
    "4bit": (0.95, 0.50),  # provisional until benchmarks/h100_measure.py --part 2 records NF4 on the H100
}


def compare(reference: Any, output: Any) -> dict[str, float]:
    """max |diff|, mean cosine similarity and top-1 agreement over positions (the last axis is the output vector)."""
    import torch

    want = reference.float().reshape(-1, reference.shape[-1])
    got = output.float().reshape(-1, output.shape[-1])
    if want.numel() == 0:
        return {"max_abs_diff": 0.0, "cosine": 1.0, "top1_agreement": 1.0}
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1, eps=1e-12)
    cosine = torch.where((got == want).all(dim=-1), torch.ones_like(cosine), cosine)  # 0 == 0 is agreement
    top1 = (got.argmax(dim=-1) == want.argmax(dim=-1)).float()
    return {"max_abs_diff": float((got - want).abs().max()), "cosine": float(cosine.mean()),
            "top1_agreement": float(top1.mean())}


def judge(key: str, metrics: dict[str, float]) -> str | None:
    """Why the output fails its key's thresholds, or None when it passes."""
    min_cos, min_top1 = FIDELITY.get(key, FIDELITY["float32"])
    problems = []
    if metrics["cosine"] < min_cos:
        problems.append(f"cosine similarity {metrics['cosine']:.4f} < {min_cos}")
    if metrics["top1_agreement"] < min_top1:
        problems.append(f"top-1 agreement {metrics['top1_agreement']:.3f} < {min_top1}")
    return f"output differs from the fp32 eager reference ({key}): " + ", ".join(problems) if problems else None
