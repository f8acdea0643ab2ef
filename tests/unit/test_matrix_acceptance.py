"""`advisor matrix` equals what the installed transformers itself accepts, on every cell it decides.

The oracle (tests/unit/_meta_acceptance.py) builds each model type on the meta device through the
`PreTrainedModel.__init__` checks `from_pretrained` runs, sub-models included; the matrix comes from the
shipped table (scripts/refresh_attention_table.py). Cells transformers decides here: eager, sdpa and
flex_attention of every model type whose default config builds; flash_attention_2/3 of the same types, by the
architecture half of the check (the flash packages are not installed; see the oracle's docstring). Everything
else is listed as undecided, with the reason, and must stay a minority.

Building ~480 model types three times takes a few minutes on a 2-core runner, so the oracle runs once per
session, spread over the cores.
"""

from __future__ import annotations

import json
from typing import Any

import _meta_acceptance as oracle_module  # tests/unit is on sys.path (rootdir-relative, no package)
import pytest

from advisor.knowledge.installed import installed_version

IMPLS = oracle_module.BUILT + oracle_module.FLASH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def matrix() -> dict[str, Any]:
    import contextlib
    import io

    from advisor.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["matrix", "--format", "json"]) == 0
    table = json.loads(out.getvalue())
    if table["transformers"] != installed_version():
        pytest.skip(f"no shipped table for the installed transformers {installed_version()}")
    return table


@pytest.fixture(scope="session")
def decided(matrix: dict[str, Any]) -> dict[str, dict[str, bool | str]]:
    rows = [(row["model_type"], row["class"]) for row in matrix["architectures"]]
    return oracle_module.decide_all(rows)


def test_matrix_agrees_with_transformers_on_every_decided_cell(
    matrix: dict[str, Any], decided: dict[str, dict[str, bool | str]]
) -> None:
    disagreements, cells = [], 0
    for row in matrix["architectures"]:
        for impl in IMPLS:
            verdict = decided[row["model_type"]][impl]
            if isinstance(verdict, bool):
                cells += 1
                if row[impl] != verdict:
                    disagreements.append(f"{row['model_type']}/{impl}: matrix {row[impl]}, transformers {verdict}")
    assert cells > 0.9 * len(IMPLS) * len(matrix["architectures"]), "too few cells decided to mean anything"
    assert disagreements == [], f"{len(disagreements)} of {cells} decided cells disagree"


def test_composites_whose_sub_models_decide_are_decided(decided: dict[str, dict[str, bool | str]]) -> None:
    """The models the issue found wrong: a sub-model's missing support must reach the top-level verdict."""
    for model_type in ("rt_detr", "d_fine", "vibevoice", "minimax_m3_vl"):
        assert all(isinstance(decided[model_type][impl], bool) for impl in IMPLS), decided[model_type]


def test_undecided_model_types_are_few_and_say_why(decided: dict[str, dict[str, bool | str]]) -> None:
    undecided = {mt: v["eager"] for mt, v in decided.items() if not isinstance(v["eager"], bool)}
    assert len(undecided) < 0.1 * len(decided), undecided
    assert all(isinstance(reason, str) and reason for reason in undecided.values())
