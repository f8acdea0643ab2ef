"""torch's SDPA backend limits per release, read from each release's own wheel (issue 11).

Source: every torch wheel from 2.5.0 to 2.14.1 (`pip download --no-deps torch==X`, Linux x86_64), read by
scripts/check_sdpa_constraints.py: the TORCH_WARN text compiled into torch/lib/libtorch_cuda.so from
aten/src/ATen/native/transformers/cuda/sdp_utils.cpp (e.g. "Flash attention only supports gpu architectures in the
range [sm80, sm90]" in 2.5.0 and 2.6.0, "[sm80, sm120]" in 2.7.0, "[sm80, sm121]" in 2.11.0) and
torch/include/ATen/native/transformers/sdp_utils_cpp.h (`check_for_attn_mask`). The rows' `checked` lists hold
what was found; the wheels are not needed to run these tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advisor.facts import ComputeCapability
from advisor.knowledge import data_dir
from advisor.knowledge.sdpa import sdpa_limit, sm_range
from advisor.probe.torch_info import sdpa_backends

CHECKED = ("2.3.0", "2.4.0", "2.5.0", "2.6.0", "2.7.0", "2.8.0", "2.9.0", "2.10.0", "2.11.0", "2.12.0", "2.13.0", "2.14.0",
           "2.14.1")
# What 2.3 and 2.4 lack: enable_gqa (from 2.5), the cuDNN head_dim checks, and (2.3) flash's mask message.
NOT_YET = {("all_fused", "gqa"): {"2.3.0", "2.4.0"}, ("cudnn", "head_dim"): {"2.3.0", "2.4.0"},
           ("flash", "no_attn_mask"): {"2.3.0"}}
ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"


def test_every_row_was_checked_in_every_release_wheel() -> None:
    rows = json.loads((data_dir() / "sdpa_backends.json").read_text())["rows"]
    assert {(r["backend"], r["constraint"]) for r in rows} >= {
        ("flash", "cuda_cc_range"), ("flash", "max_head_dim"), ("flash", "no_attn_mask"), ("flash", "dtypes"),
        ("mem_efficient", "cuda_cc_range"), ("mem_efficient", "dtypes"), ("cudnn", "cuda_cc_range")}
    for row in rows:
        assert "pytorch/pytorch@001f694a" in row["source"] and "sdp_utils.cpp" in row["source"]
        checked = {c["torch"]: c for c in row["checked"]}
        assert tuple(checked) == CHECKED, row["constraint"]
        for release, result in checked.items():
            missing = release in NOT_YET.get((row["backend"], row["constraint"]), set())
            assert result["holds"] is not missing and len(result["commit"]) == 40, (row["constraint"], release)


@pytest.mark.parametrize(("torch", "low", "high"), [
    ("2.5.0", "8.0", "9.0"), ("2.6.0", "8.0", "9.0"), ("2.7.0", "8.0", "12.0"), ("2.11.0", "8.0", "12.1"),
    ("2.14.1", "8.0", "12.1"), ("2.11.0+cu130", "8.0", "12.1"), ("2.7.1", "8.0", "12.0"),
])
def test_flash_range_per_release(torch: str, low: str, high: str) -> None:
    limit = sdpa_limit(data_dir(), "flash", "cuda_cc_range", torch)
    assert limit is not None and limit.verified
    assert sm_range(limit) == (ComputeCapability.parse(low), ComputeCapability.parse(high))
    assert limit.cite().startswith(f"torch {torch.split('+')[0][:3]}") and "libtorch_cuda.so" in limit.cite()


def test_cudnn_is_opt_in_before_2_5() -> None:
    """torch 2.3.0 and 2.4.0 libtorch_cuda.so carry TORCH_CUDNN_SDPA_ENABLED; 2.5.0 and later do not."""
    assert "TORCH_CUDNN_SDPA_ENABLED=1" in _backends("2.4.0", "9.0")["cudnn"].reason
    assert _backends("2.4.0", "9.0")["cudnn"].usable is False
    assert _backends("2.5.0", "9.0")["cudnn"].usable is True
    assert sdpa_limit(data_dir(), "all_fused", "gqa", "2.4.0").verified is False  # enable_gqa arrived in 2.5


def test_a_release_not_checked_is_unverified() -> None:
    limit = sdpa_limit(data_dir(), "flash", "cuda_cc_range", "2.2.2")
    assert limit is not None and not limit.verified and limit.cite().startswith("unverified")


def _backends(torch: str, cc: str) -> dict[str, Any]:
    return sdpa_backends(torch, cuda="12.8", hip=None, cudnn="9.10.2", capabilities=[ComputeCapability.parse(cc)])


def test_blackwell_flash_sdpa_by_release() -> None:
    """RTX 5090 (sm120): torch 2.6 builds flash SDPA up to sm90 only; 2.7 includes sm120; GB10 (sm121) waits for
    a release whose range reaches sm121."""
    old = _backends("2.6.0", "12.0")["flash"]
    assert old.usable is False and "up to sm90" in old.reason and "torch 2.6.0 libtorch_cuda.so" in old.reason
    assert _backends("2.7.0", "12.0")["flash"].usable is True
    assert _backends("2.7.0", "12.1")["flash"].usable is False
    assert _backends("2.11.0", "12.1")["flash"].usable is True
    assert "unverified" in _backends("2.2.2", "12.0")["flash"].reason  # 2.2 not checked: the newest range, said so


def _env(tmp_path: Path, torch: str) -> Path:
    env = json.loads((ENVS / "a100_80gb_fa2_bnb.json").read_text())
    env["torch"]["version"] = torch
    env["libraries"]["torch"]["version"] = torch
    path = tmp_path / f"a100_torch{torch}.json"
    path.write_text(json.dumps(env))
    return path


def _attn012(env: Path, **request: Any) -> str | None:
    from advisor.model.resolve import resolve_model
    from advisor.plan.options import PlanRequest
    from advisor.plan.recommend import make_plan
    from advisor.probe.target import load_environment

    rec = make_plan(resolve_model("meta-llama/Llama-3.2-1B"), load_environment(env),
                    PlanRequest(attn="sdpa", dtype="bfloat16", quantize="none", **request))
    assert rec.chosen is not None
    return next((f.message for f in rec.chosen.findings if f.code == "ATTN012"), None)


def test_attn012_a_padded_batch_cites_the_release(tmp_path: Path) -> None:
    """sdp_utils_cpp.h check_for_attn_mask: 'Flash Attention does not support non-null attn_mask.'"""
    assert _attn012(_env(tmp_path, "2.6.0")) is None  # batch 1: transformers passes no mask
    message = _attn012(_env(tmp_path, "2.6.0"), batch=4)
    assert message is not None and "attention mask" in message and "torch 2.6.0 libtorch_cuda.so" in message
    assert "unverified for torch" not in message and "libtorch_cuda.so, unverified: read, not run" in message
    message = _attn012(_env(tmp_path, "2.15.0"), batch=4)  # newer than any wheel checked
    assert message is not None and "unverified for torch 2.15.0" in message


# --- flash-attn's own limits per release (data/attention_impls.json package_limits) ---

def _attn_findings(cli: Any, gpu: str, flash_attn: str) -> list[dict[str, Any]]:
    _, out, _ = cli("check", "meta-llama/Llama-3.2-1B", "--gpu", gpu, "--attn", "flash_attention_2", "--dtype",
                    "bfloat16", "--assume", f"flash-attn=={flash_attn}", "--format", "json")
    result = json.loads(out)
    return [f for f in result["failures"] + result["warnings"] if f["code"] == "ATTN005"]


def test_flash_attn_before_2_7_3_refuses_blackwell(cli: Any) -> None:
    """Dao-AILab/flash-attention v2.7.2 csrc/flash_attn/flash_api.cpp:370 `TORCH_CHECK(is_sm90 || is_sm8x, ...)`;
    v2.7.3 :367 `bool is_sm8x_min = cc_major >= 8;`."""
    old = _attn_findings(cli, "RTX-5090", "2.6.3")
    assert old and old[0]["severity"] == "fail" and "up to 9.x" in old[0]["message"]
    assert "flash_api.cpp:370" in old[0]["message"] and ">=2.7.3" in old[0]["fix"]
    assert _attn_findings(cli, "RTX-5090", "2.7.3") == []
    assert _attn_findings(cli, "H100", "2.6.3") == []


def test_flash_attn_rocm_build_from_2_6_2(cli: Any) -> None:
    """csrc/flash_attn_ck first appears in the v2.6.2 tree (absent at v2.6.1)."""
    old = _attn_findings(cli, "MI300X", "2.5.9")
    assert old and old[0]["severity"] == "warn" and "no ROCm build" in old[0]["message"]
    assert _attn_findings(cli, "MI300X", "2.6.2") == []
