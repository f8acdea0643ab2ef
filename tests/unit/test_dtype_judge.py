"""Issue 26: DTYPE001 (check, recommend) and the full matrix ask one judge whether a GPU runs bfloat16 natively,
so they cannot disagree about bf16 on a compute capability."""

from __future__ import annotations

import pytest

import advisor
from advisor.candidate import Candidate
from advisor.facts import ComputeCapability, known
from advisor.knowledge import load_knowledge
from advisor.rules.base import Context
from advisor.rules.dtype import bf16_native
from advisor.rules.kernel_requirements import native_dtypes

KNOWLEDGE = load_knowledge()
BF16 = Candidate(attn="sdpa", dtype="bfloat16", quantization="none", placement="gpu")


@pytest.mark.parametrize("name", [row.name for row in KNOWLEDGE.gpus.rows])
def test_dtype001_agrees_with_the_judge_on_every_gpu(name: str) -> None:
    env = advisor.target_environment(gpu=name, import_checks=False, kernel_runs=False)
    (gpu,) = env.gpu_list
    cc = known(gpu.compute_capability)
    native = "bfloat16" in native_dtypes(KNOWLEDGE, cc, gpu.gfx_arch)
    refused = any(f.code == "DTYPE001" for f in bf16_native(Context(env=env, knowledge=KNOWLEDGE), BF16))
    assert refused is not native, f"{name}: DTYPE001 refuses={refused}, the judge says native={native}"
    if cc is not None:  # the full matrix's generation row for this compute capability asks the same judge
        from advisor.matrix.history import _native

        assert ("bfloat16" in _native(KNOWLEDGE, ComputeCapability.parse(str(cc)), None)) is native


def test_the_judge_draws_the_ampere_line() -> None:
    """Not a tautology of the table's own flags: bf16 tensor cores start at 8.0 (a T4 at 7.5 has none)."""
    assert "bfloat16" not in native_dtypes(KNOWLEDGE, ComputeCapability.parse("7.5"))
    assert "bfloat16" in native_dtypes(KNOWLEDGE, ComputeCapability.parse("8.0"))
