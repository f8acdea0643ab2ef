"""The acceptance's environment and config patches (generate_acceptance.py's EXTRAS, CONFIG_FIELDS, STAND_INS).

- Every table entry names a model type that a stored release has, and each stored file records exactly the table's
  fields for the types it built with them.
- Types that were undecided for a missing package or a config that does not build are decided in the stored files,
  with the environment that decided them (scipy for eomt) and the fields they were built with.
- The child uses the fields only where the default config does not build (executed on the installed release).
- A verdict made with a stand-in sub-model is not taken for the default model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge import data_dir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import acceptance_report  # noqa: E402
import generate_acceptance as ga  # noqa: E402

ACCEPTANCE = data_dir() / "acceptance"


def _files() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(ACCEPTANCE.glob("transformers-*.json"))]


def _flag(data: dict[str, Any], model_type: str, impl: str) -> str:
    return str(data["types"][model_type][1][data["impls"].index(impl)])


def test_every_table_entry_names_a_stored_model_type() -> None:
    known = {t for data in _files() for t in data["types"]}
    for model_type in (*ga.CONFIG_FIELDS, *ga.STAND_INS):
        assert model_type in known, f"{model_type}: no stored release has this model type"
    for fields, why in ga.CONFIG_FIELDS.values():
        assert fields and why


def test_stored_files_record_the_table_fields_they_used() -> None:
    used = 0
    for data in _files():
        for model_type, fields in data.get("config_fields", {}).items():
            assert model_type in data["types"], (data["transformers"], model_type)
            assert fields == ga.CONFIG_FIELDS[model_type][0], (data["transformers"], model_type)
            used += 1
    assert used, "no stored release was built with the config fields"


@pytest.mark.parametrize(("release", "model_type"), [
    ("5.25.0", "autoformer"), ("5.25.0", "time_series_transformer"), ("5.25.0", "esm"), ("4.57.6", "nemotron"),
    ("4.46.3", "encoder-decoder"), ("4.57.6", "vision-text-dual-encoder"),
])
def test_config_fields_decide_a_type_that_was_undecided(release: str, model_type: str) -> None:
    data = acceptance_report.load_acceptance(release, ACCEPTANCE)
    if data is None or "config_fields" not in data:
        pytest.skip(f"{release} not regenerated with the config fields")
    assert data["config_fields"][model_type] == ga.CONFIG_FIELDS[model_type][0]
    assert "?" not in data["types"][model_type][1], data["types"][model_type]


def test_the_composite_follows_the_sub_models_it_was_built_with() -> None:
    """bert+bert in 4.46.3: BERT has SDPA and no FA2, so the composite accepts sdpa and refuses FA2, by BertModel."""
    data = acceptance_report.load_acceptance("4.46.3", ACCEPTANCE)
    if data is None or "config_fields" not in data:
        pytest.skip("4.46.3 not regenerated with the config fields")
    assert _flag(data, "encoder-decoder", "sdpa") == "1"
    assert _flag(data, "encoder-decoder", "flash_attention_2") == "0"
    assert "BertModel" in data["types"]["encoder-decoder"][2]["flash_attention_2"]


def test_scipy_decides_the_universal_segmentation_types() -> None:
    data = acceptance_report.load_acceptance("5.25.0", ACCEPTANCE)
    if data is None or "extras" not in data["environment"]:
        pytest.skip("5.25.0 not regenerated with the extras")
    assert data["environment"]["extras"] == ga.EXTRAS
    for model_type in ("eomt", "eomt_dinov3", "videomt"):
        assert "?" not in data["types"][model_type][1], data["types"][model_type]
    for name in ("torchvision", "timm", "torchaudio"):
        assert name in data["environment"]["not_installable"]
    # what needs timm stays undecided, with the release's own message
    assert "timm" in data["types"]["timm_backbone"][2]["sdpa"]


def test_stand_in_refusal_and_acceptance_are_undecided() -> None:
    row = {"model_type": "detr", "config": ga.CONFIG_FIELDS["detr"][0],
           "cells": {"eager": True, "sdpa": False, "flash_attention_2": False, "flex_attention": True},
           "reasons": {"sdpa": "ValueError: ResNetBackbone does not support sdpa",
                       "flash_attention_2": "ValueError: DetrModel does not support flash_attention_2"}}
    out = ga.stand_in_verdicts(json.loads(json.dumps(row)))
    assert out["cells"]["eager"] is True
    assert out["cells"]["sdpa"].startswith("undecided: refused with ResNetBackbone")
    assert out["cells"]["flash_attention_2"] is False  # the model itself refuses: holds for the default backbone
    assert out["cells"]["flex_attention"].startswith("undecided: accepted with ResNetBackbone")
    default = {**row, "config": None}
    default.pop("config")
    assert ga.stand_in_verdicts(json.loads(json.dumps(default)))["cells"] == row["cells"]  # built by default


def test_child_uses_the_fields_only_where_the_default_does_not_build(tmp_path: Path) -> None:
    """Executed on the installed release: esm's default config (vocab_size None) does not build, llama's does."""
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"esm": ga.CONFIG_FIELDS["esm"][0], "llama": {"num_attention_heads": 3}}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "advisor.knowledge.acceptance", "--types", "esm,llama",
                           "--impls", "eager,sdpa", "--config-fields", str(fields)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["model_type"]: row for row in json.loads(proc.stdout.strip().splitlines()[-1])["rows"]}
    assert rows["esm"]["config"] == ga.CONFIG_FIELDS["esm"][0]
    assert rows["esm"]["cells"]["sdpa"] is True
    assert "config" not in rows["llama"]  # its default builds: the (here invalid) fields are never used
    assert rows["llama"]["cells"]["sdpa"] is True


def test_matrix_follows_a_newly_decided_type() -> None:
    """eomt at 5.25.0 was undecided (scipy missing) and the history's class-flag reading was '?' for it; decided
    with scipy, the history and `advisor matrix` carry the executed verdicts (matrix_from_acceptance.py)."""
    from advisor.knowledge.history import load_history

    data = acceptance_report.load_acceptance("5.25.0", ACCEPTANCE)
    if data is None or "extras" not in data["environment"]:
        pytest.skip("5.25.0 not regenerated with the extras")
    history = load_history()
    index = history.releases.index("5.25.0")
    row = history.architectures["eomt"]
    for impl in ("sdpa", "flash_attention_2", "flex_attention", "flash_attention_4"):
        assert getattr(row, impl)[index] == _flag(data, "eomt", impl), impl
    assert _flag(data, "eomt", "sdpa") == "1" and _flag(data, "eomt", "flash_attention_2") == "0"
    matrix = acceptance_report.view_matrix("5.25.0")["eomt"]
    assert matrix["sdpa"] is True and matrix["flash_attention_2"] is False


def test_matrix_follows_a_newly_decided_refusal() -> None:
    """nemotron's default config did not build (num_key_value_heads None); built with the documented defaults,
    4.57.6 refuses flash_attention_3 (its model-local table lacks the name) where the class flag said yes: the
    matrix now says no."""
    data = acceptance_report.load_acceptance("4.57.6", ACCEPTANCE)
    if data is None or "nemotron" not in data.get("config_fields", {}):
        pytest.skip("4.57.6 not regenerated with the config fields")
    assert _flag(data, "nemotron", "flash_attention_3") == "0"
    assert "KeyError 'flash_attention_3'" in data["types"]["nemotron"][2]["flash_attention_3"]
    matrix = acceptance_report.view_matrix("4.57.6")["nemotron"]
    assert matrix["flash_attention_3"] is False and matrix["flash_attention_2"] is True
