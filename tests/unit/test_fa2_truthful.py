"""Issue 29: the FlashAttention-2 row stays truthful though no flash-attn 2 wheel ran on a GPU here: `check
--assume flash-attn==2.8.3` answers from the kernel's own checks, per flash-attn release, on snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENVS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "envs"
MODEL = "meta-llama/Llama-2-7b-hf"
FA2 = ("--assume", "flash-attn==2.8.3", "--attn", "flash_attention_2", "--format", "json")


def _check(cli: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("check", MODEL, *args)
    assert "Traceback" not in err
    return code, json.loads(out)


def test_fa2_283_works_on_an_a100_snapshot(cli: Any) -> None:
    code, result = _check(cli, "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--dtype", "bfloat16", *FA2)
    assert code == 0 and result["ok"] and result["failures"] == []


def test_fa2_283_is_refused_on_a_t4_snapshot_with_the_kernels_reason(cli: Any) -> None:
    code, result = _check(cli, "--env", str(ENVS / "t4_plain.json"), "--dtype", "float16", "--quantize", "4bit", *FA2)
    assert code == 1
    fa2 = [f for f in result["failures"] if f["option"] == "flash_attention_2"]
    assert [f["code"] for f in fa2] == ["ATTN005"]
    assert fa2[0]["message"] == "flash_attention_2 needs compute capability >= 8.0; T4 has 7.5 (Turing)"


def test_the_limit_moves_with_the_flash_attn_release(cli: Any) -> None:
    old = ("--gpu", "B200", "--dtype", "bfloat16", "--attn", "flash_attention_2", "--format", "json")
    code, result = _check(cli, *old, "--assume", "flash-attn==2.7.2")
    assert code == 1
    assert "flash-attn 2.7.2 accepts compute capability up to 9.x only" in result["failures"][0]["message"]
    assert "csrc/flash_attn/flash_api.cpp:370" in result["failures"][0]["message"]
    code, result = _check(cli, *old, "--assume", "flash-attn==2.8.3")
    assert code == 0 and result["ok"]
