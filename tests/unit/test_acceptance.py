"""Issue 28: the matrix equals each stored release's executed attention acceptance.

- The oracle (`advisor.knowledge.acceptance`) on the installed transformers, in a child (it installs flash stubs and
  patches the release's availability checks, which must not leak into this process): known verdicts.
- The shipped matrix against the shipped acceptance files (`data/acceptance/`): >= 99.5% of the decided cells of
  every covered release agree, computed from the committed files (fast).
- `advisor matrix --history` and `--full` show flash_attention_4.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from advisor.knowledge import data_dir
from advisor.knowledge.history import load_history
from advisor.knowledge.installed import installed_version

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import acceptance_report  # noqa: E402

ACCEPTANCE = data_dir() / "acceptance"


def _cli(argv: list[str]) -> dict[str, Any]:
    from advisor.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return dict(json.loads(out.getvalue()))


@pytest.fixture(scope="module")
def oracle() -> dict[str, dict[str, Any]]:
    """The executed acceptance of a few model types under the installed transformers (one child, ~10 s)."""
    types = "bark,rt_detr,llama,gpt2,beit,falcon,minimax_m3_vl,idefics2"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "advisor.knowledge.acceptance", "--types", types],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["transformers"] == installed_version()
    return {row["model_type"]: row for row in result["rows"]}


def test_oracle_refuses_what_a_sub_model_refuses(oracle: dict[str, dict[str, Any]]) -> None:
    """bark's top class supports flash, its codec sub-model (Encodec) does not: the load refuses."""
    bark = oracle["bark"]
    assert bark["cells"]["flash_attention_2"] is False
    assert "EncodecModel" in bark["reasons"]["flash_attention_2"]
    assert oracle["rt_detr"]["cells"]["sdpa"] is False  # its ResNet backbone refuses
    assert "Backbone" in oracle["rt_detr"]["reasons"]["sdpa"]


def test_oracle_fa4_follows_flash_support(oracle: dict[str, dict[str, Any]]) -> None:
    if Version(installed_version() or "0") < Version("5.4"):
        pytest.skip("flash_attention_4 is accepted from transformers 5.4")
    assert oracle["llama"]["cells"]["flash_attention_4"] is True
    assert oracle["beit"]["cells"]["flash_attention_2"] is False
    assert oracle["beit"]["cells"]["flash_attention_4"] is False
    assert oracle["idefics2"]["cells"]["flash_attention_4"] is True


def test_oracle_hub_kernel_redirect_counts_as_accepted(oracle: dict[str, dict[str, Any]]) -> None:
    """minimax_m3_vl turns any flash request into its Hub kernel; offline the fetch fails after acceptance."""
    row = oracle["minimax_m3_vl"]
    if not isinstance(row["cells"]["eager"], bool):
        pytest.skip(f"minimax_m3_vl does not build here: {row['cells']['eager']}")
    assert row["cells"]["flash_attention_2"] is True
    assert row["reasons"]["flash_attention_2"].startswith("accepted")


def test_fa3_dropout_refused_where_the_release_refuses_it() -> None:
    """4.57.6 raises on attention_dropout > 0 under FA3 (`_flash_attn_3_can_dispatch`); 5.25 only warns."""
    old = acceptance_report.load_acceptance("4.57.6", ACCEPTANCE)
    if old is None:
        pytest.skip("4.57.6 not executed")
    dropout = {mt: notes["flash_attention_3"] for mt, (_, _, notes) in old["types"].items()
               if "attention_dropout" in notes.get("flash_attention_3", "")}
    assert dropout, "no default config with attention_dropout > 0 refused under FA3 in 4.57.6"
    new = acceptance_report.load_acceptance("5.25.0", ACCEPTANCE)
    if new is not None:
        for model_type in dropout:
            row = new["types"].get(model_type)
            if row is not None and row[1][new["impls"].index("flash_attention_2")] == "1":
                assert "attention_dropout" not in row[2].get("flash_attention_3", "")


def test_fa3_local_table_crash_is_recorded() -> None:
    """falcon's own FALCON_ATTENTION_CLASSES has no flash_attention_3 in 4.57.6: KeyError while loading."""
    data = acceptance_report.load_acceptance("4.57.6", ACCEPTANCE)
    if data is None:
        pytest.skip("4.57.6 not executed")
    _, flags, notes = data["types"]["falcon"]
    assert flags[data["impls"].index("flash_attention_3")] == "0"
    assert "KeyError 'flash_attention_3'" in notes["flash_attention_3"]


def test_every_acceptance_file_cites_its_reproduction() -> None:
    files = sorted(ACCEPTANCE.glob("transformers-*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text())
        release = data["transformers"]
        assert path.name == f"transformers-{release}.json"
        assert data["wheel"]["file"].startswith(f"transformers-{release}-") and len(data["wheel"]["sha256"]) == 64
        assert data["generated_by"].startswith("python scripts/generate_acceptance.py")
        assert data["method"] and data["environment"]["torch"]
        for model_type, (class_name, flags, notes) in data["types"].items():
            assert len(flags) == len(data["impls"]) and set(flags) <= set("01?-"), model_type
            for impl, char in zip(data["impls"], flags):
                if char in "0?":
                    assert notes.get(impl), f"{release} {model_type}/{impl} has no reason"


def test_shipped_matrix_agrees_with_the_executed_acceptance() -> None:
    """From the committed files only: the history's flags and the matrix view per covered release."""
    history = load_history()
    covered = [r for r in history.releases if (ACCEPTANCE / f"transformers-{r}.json").exists()]
    assert covered == history.releases, f"not executed: {sorted(set(history.releases) - set(covered))}"
    low = {}
    for release in covered:
        cells = acceptance_report.executed_cells(acceptance_report.load_acceptance(release, ACCEPTANCE) or {})
        result = acceptance_report.compare(cells, acceptance_report.view_history(release))
        undecided = sum(1 for char, _ in cells.values() if char == "?")
        assert undecided < 0.2 * len(cells), f"{release}: {undecided} of {len(cells)} cells undecided"
        if result["percent"] < acceptance_report.TARGET:
            low[release] = (result["percent"], result["disagreements"][:5])
    assert not low, low


@pytest.mark.parametrize("release", ["4.46.3", "4.57.6", "5.4.0"])
def test_matrix_command_agrees_on_the_audited_releases(release: str) -> None:
    data = acceptance_report.load_acceptance(release, ACCEPTANCE)
    if data is None:
        pytest.skip(f"{release} not executed")
    result = acceptance_report.compare(acceptance_report.executed_cells(data), acceptance_report.view_matrix(release))
    assert result["percent"] >= acceptance_report.TARGET, result["disagreements"][:10]


def test_matrix_shows_fa4_from_5_4() -> None:
    table = _cli(["matrix", "--transformers", "5.4.0", "--format", "json", "--model-type", "llama"])
    assert table["architectures"][0]["flash_attention_4"] is True
    table = _cli(["matrix", "--transformers", "5.3.0", "--format", "json", "--model-type", "llama"])
    assert table["architectures"][0]["flash_attention_4"] is False


def test_history_and_full_show_fa4() -> None:
    report = _cli(["matrix", "--history", "llama", "--format", "json"])
    fa4 = {item["impl"]: item for item in report["implementations"]}["flash_attention_4"]
    assert fa4["first_release"] == "5.4.0", fa4
    full = _cli(["matrix", "--full", "--transformers", "5.4.0", "--model-type", "llama", "--format", "json"])
    assert "flash_attention_4" in full["impls"]
    assert full["architectures"][0]["declared"]["flash_attention_4"] is True
    beit = _cli(["matrix", "--full", "--transformers", "5.4.0", "--model-type", "beit", "--format", "json"])
    assert beit["architectures"][0]["declared"]["flash_attention_4"] is False
