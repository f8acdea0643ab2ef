"""One judge of an attention kernel's compute-capability range (issue 26): ATTN005 (`check`) and the full matrix
(`matrix --full`, history) ask advisor.rules.kernel_requirements, so they agree on every card. They disagreed on a
card above a row's maximum within its major (the rule compared the maximum by major, the matrix in full): a 9.5
card passed `check` with flash_attention_3, whose only Hopper image is sm_90a, while the matrix refused it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor import api
from advisor.facts import ComputeCapability
from advisor.knowledge import load_knowledge
from advisor.matrix.history import _hardware_verdict, gpu_generations
from advisor.rules.kernel_requirements import outside, outside_range

ENV = Path(__file__).resolve().parents[1] / "fixtures" / "envs" / "h100_fa2_fa3_bnb.json"


def _env_with_cc(tmp_path: Path, major: int, minor: int) -> Path:
    data = json.loads(ENV.read_text())
    for gpu in data["gpus"]:
        gpu["compute_capability"] = {"major": major, "minor": minor}
    path = tmp_path / f"cc{major}{minor}.json"
    path.write_text(json.dumps(data))
    return path


def _check_refuses(env: Path) -> bool:
    result = api.check("Qwen/Qwen2-7B", attn="flash_attention_3", dtype="bfloat16", env=env)
    return any(f.code == "ATTN005" for f in result.failures)


def _matrix_refuses(cc: str) -> bool:
    knowledge = load_knowledge()
    hopper = next(g for g in gpu_generations(knowledge) if g.compute_capability == "9.0")
    req = knowledge.attention_requirement("flash_attention_3")
    assert req is not None
    return not _hardware_verdict(knowledge, req, hopper.model_copy(update={"compute_capability": cc}), "bfloat16").ok


def test_the_range_is_compared_in_full() -> None:
    cc = ComputeCapability.parse
    assert outside_range(cc("9.5"), "8.0", "9.0") == "above"
    assert outside_range(cc("9.0"), "8.0", "9.0") is None
    assert outside_range(cc("7.5"), "8.0", None) == "below"
    req = load_knowledge().attention_requirement("flash_attention_3")
    assert req is not None and outside(req, cc("10.0")) == "above"


@pytest.mark.parametrize(("major", "minor", "refused"), [(9, 0, False), (9, 5, True), (10, 0, True), (8, 6, False)])
def test_check_and_the_full_matrix_agree(tmp_path: Path, major: int, minor: int, refused: bool) -> None:
    assert _check_refuses(_env_with_cc(tmp_path, major, minor)) is refused
    assert _matrix_refuses(f"{major}.{minor}") is refused
