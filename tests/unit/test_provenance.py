"""Issue 28's done-when: every fact in data/ that describes runtime behaviour cites a reproduction (what was run,
on which wheel or release) or is marked `verified: false` with its source; a finding over an unread-only fact says
"unverified". The walk is advisor.knowledge.provenance; the rows are the real tables, and the negative cases are
rows and table copies built here (data/ is never edited)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import DataTableError
from advisor.knowledge import data_dir
from advisor.knowledge.bitsandbytes import load_bnb_facts
from advisor.knowledge.notes import fp16_overflow_models
from advisor.knowledge.provenance import audit, runtime_rows
from advisor.knowledge.schema import UNVERIFIED, AttentionRequirement, VersionConstraint, provenance_problem
from advisor.knowledge.sdpa import sdpa_limit

ROOT = Path(__file__).resolve().parents[2]

RUN = {"command": "python scripts/check_bnb_cpu.py docs/knowledge/bnb-cpu-tf5.25.0.json",
       "ran": "bitsandbytes 0.47.0 wheel, torch 2.13.0+cpu", "output": "docs/knowledge/bnb-cpu-tf5.25.0.json"}


def test_every_runtime_fact_in_data_cites_a_run_or_says_unverified() -> None:
    assert audit(data_dir()) == []
    rows = list(runtime_rows(data_dir()))
    assert len(rows) > 1000 and {r.file for r in rows} >= {"bitsandbytes.json", "softcap.json", "capabilities.json"}


def test_every_cited_output_is_committed() -> None:
    """A reproduction names a file someone can open: it exists in the repository."""
    for row in runtime_rows(data_dir()):
        run = row.provenance.get("reproduction")
        if run:
            for output in run["output"].split(", "):
                assert (ROOT / output).is_file(), (row.file, row.key, output)


@pytest.mark.parametrize("row", [
    {"fact": "cpu", "value": "none", "source": "docs/source/installation.mdx:5"},  # neither
    {"fact": "cpu", "value": "none", "verified": True, "source": "docs"},  # verified, but no run named
    {"fact": "cpu", "value": "none", "verified": False},  # unverified without its source
    {"fact": "cpu", "value": "none", "verified": False, "source": "  "},
    {"fact": "cpu", "value": "none", "reproduction": {**RUN, "output": ""}},  # a run without its output file
    {"fact": "cpu", "value": "none", "reproduction": {"command": RUN["command"], "output": RUN["output"]}},
])
def test_a_row_with_neither_fails(row: dict[str, Any]) -> None:
    assert provenance_problem(row)


@pytest.mark.parametrize("row", [
    {"verified": False, "source": "docs/source/installation.mdx:5"},
    {"verified": True, "reproduction": RUN},
])
def test_a_row_with_either_passes(row: dict[str, Any]) -> None:
    assert provenance_problem(row) is None


def test_the_typed_loaders_refuse_a_verified_row_without_a_run() -> None:
    row = next(r for r in json.loads((ROOT / "data" / "libraries.json").read_text())["rows"] if not r["verified"])
    VersionConstraint.model_validate(row)
    with pytest.raises(ValueError, match="neither a reproduction"):
        VersionConstraint.model_validate({**row, "verified": True})
    impl = json.loads((ROOT / "data" / "attention_impls.json").read_text())["rows"][0]
    with pytest.raises(ValueError, match="verified\n  Field required"):  # no silent default either way
        AttentionRequirement.model_validate({key: value for key, value in impl.items() if key != "verified"})


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(data_dir(), copy)
    return copy


@pytest.mark.parametrize(("file", "where"), [
    ("softcap.json", ("rows", 0)),
    ("capabilities.json", ("nvidia", 3)),
    ("sdpa_backends.json", ("rows", 2)),
    ("bitsandbytes.json", ("rows", 4)),  # a row that cites a run: without it, and claiming verified
])
def test_the_walk_finds_a_stripped_row(data_copy: Path, file: str, where: tuple[str, int]) -> None:
    path = data_copy / file
    raw = json.loads(path.read_text())
    row = raw[where[0]][where[1]]
    row.pop("reproduction", None)
    row["verified"] = True
    path.write_text(json.dumps(raw))
    found = audit(data_copy)
    assert len(found) == 1 and found[0].startswith(f"{file} {where[0]}[{where[1]}]"), found


def test_the_walk_finds_a_generated_table_without_its_command_and_an_unclassified_table(data_copy: Path) -> None:
    raw = json.loads((data_copy / "hub_kernels.json").read_text())
    del raw["generated_by"]
    (data_copy / "hub_kernels.json").write_text(json.dumps(raw))
    (data_copy / "new_table.json").write_text("{}")
    found = audit(data_copy)
    assert any(p.startswith("hub_kernels.json read ") for p in found)
    assert "new_table.json: not classified (add it to a list in advisor/knowledge/provenance.py)" in found


def test_the_raw_loaders_refuse_a_row_with_neither(data_copy: Path) -> None:
    raw = json.loads((data_copy / "bitsandbytes.json").read_text())
    raw["rows"][0]["verified"] = True
    (data_copy / "bitsandbytes.json").write_text(json.dumps(raw))
    with pytest.raises(DataTableError, match="cuda_min_cc"):
        load_bnb_facts(data_copy)


def test_findings_over_read_only_facts_say_unverified() -> None:
    root = data_dir()
    assert fp16_overflow_models(str(root))["t5"].startswith(UNVERIFIED)
    limit = sdpa_limit(root, "flash", "cuda_cc_range", "2.6.0")
    assert limit is not None and limit.cite() == f"torch 2.6.0 libtorch_cuda.so, {UNVERIFIED}"
    executed = [r for r in load_bnb_facts(root) if r.reproduction is not None]
    assert executed and all(r.cite().startswith("reproduced: docs/knowledge/") for r in executed)
    assert all(UNVERIFIED in r.cite() for r in load_bnb_facts(root) if r.reproduction is None)
