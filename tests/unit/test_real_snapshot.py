"""The snapshot probed on a real H100 (docs/examples/h100-probe.json) loads and plans like any target."""

from __future__ import annotations

from pathlib import Path

from advisor.facts import ComputeCapability
from advisor.model.resolve import resolve_model
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment

SNAPSHOT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "h100-probe.json"


def test_real_h100_snapshot_loads() -> None:
    env = load_environment(SNAPSHOT)
    gpu = env.gpu_list[0]
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.compute_capability == ComputeCapability(major=9, minor=0)
    assert gpu.dtypes.bf16 and gpu.dtypes.fp8  # type: ignore[union-attr]
    assert env.library("bitsandbytes").importable is True
    assert not env.library("flash-attn").installed


def test_plan_for_the_real_h100_rejects_fa2_for_the_missing_package() -> None:
    env = load_environment(SNAPSHOT)
    rec = make_plan(resolve_model("meta-llama/Meta-Llama-3-8B"), env)
    assert rec.from_pretrained is not None and rec.from_pretrained["attn_implementation"] == "sdpa"
    fa2 = {r.code for r in rec.rejected if r.option == "flash_attention_2"}
    assert "ATTN002" in fa2 and "ATTN005" not in fa2  # the H100 can run FA2; only the package is missing
    # the snapshot's transformers (5.17) is not the one installed here: the shipped table answers
    assert rec.transformers == env.version_of("transformers")
