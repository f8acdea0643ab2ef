"""`advisor check --manifest`: every model x target pair, and bad manifests named by file, line and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import ManifestError
from advisor.fleet.manifest import Manifest, load_manifest

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
DOC = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"

GOOD_YAML = """\
models:
  - model: meta-llama/Llama-3.2-1B
    from_pretrained: recommend
  - model: gpt2
    from_pretrained:
      dtype: float16
      attn_implementation: sdpa
targets:
  - env: t4.json
  - env: a100.json
  - gpu: A100-80GB
    assume: [torch==2.6.0, transformers==4.57.1]
workload:
  batch: 2
  seq_len: 1024
"""

GOOD_TOML = """\
[workload]
batch = 2
seq_len = 1024

[[models]]
model = "meta-llama/Llama-3.2-1B"
from_pretrained = "recommend"

[[models]]
model = "gpt2"
[models.from_pretrained]
dtype = "float16"
attn_implementation = "sdpa"

[[targets]]
env = "t4.json"

[[targets]]
env = "a100.json"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(ENVS / "t4_bnb_fa2.json", tmp_path / "t4.json")
    shutil.copy(ENVS / "a100_80gb_fa2_bnb.json", tmp_path / "a100.json")
    return tmp_path


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return info.value


def test_yaml_and_toml_give_the_same_manifest(folder: Path) -> None:
    yaml_m = load_manifest(_write(folder, "deploy.yaml", GOOD_YAML)).manifest
    toml_m = load_manifest(_write(folder, "deploy.toml", GOOD_TOML)).manifest
    assert yaml_m.models == toml_m.models
    assert yaml_m.targets[:2] == toml_m.targets and yaml_m.workload == toml_m.workload
    assert yaml_m.models[1].from_pretrained != "recommend"
    assert yaml_m.targets[2].gpu == ["A100-80GB"]


def test_all_pairs_pass_exit_0(folder: Path, cli: Any) -> None:
    path = _write(folder, "deploy.yaml", GOOD_YAML.replace("  - gpu: A100-80GB\n    assume: [torch==2.6.0, transformers==4.57.1]\n", ""))
    code, out, err = cli("check", "--manifest", str(path), "--format", "json")
    data = json.loads(out)
    assert code == 0, err
    assert data["ok"] is True and len(data["pairs"]) == 4
    assert {(p["model"], p["target"]) for p in data["pairs"]} == {
        (m, t) for m in ("meta-llama/Llama-3.2-1B", "gpt2") for t in ("t4", "a100")
    }
    recommended = next(p for p in data["pairs"] if p["mode"] == "recommend" and p["target"] == "a100")
    assert recommended["from_pretrained"]["attn_implementation"] == "flash_attention_2"
    assert data["pairs"][0]["line"] == 2 and data["pairs"][2]["line"] == 4


def test_one_failing_pair_exits_1_with_its_rules(folder: Path, cli: Any) -> None:
    text = GOOD_YAML.replace("dtype: float16", "dtype: bfloat16").replace("attn_implementation: sdpa",
                                                                          "attn_implementation: flash_attention_2")
    # NOTE: without `kernels`, flash_attention_2 has no Hub-kernel fallback on the third target (this machine's
    # libraries): its failure must not depend on whether the installed transformers pulled `kernels` in (5.25 does)
    text = text.replace("transformers==4.57.1]", "transformers==4.57.1]\n    without: [kernels]")
    path = _write(folder, "deploy.yaml", text)
    code, out, _ = cli("check", "--manifest", str(path))
    assert code == 1
    assert "[XX] gpt2 on t4: flash_attention_2 / bfloat16" in out
    assert "ATTN005" in out and "DTYPE001" in out and "fix:" in out
    assert "[ok] gpt2 on a100" in out and "Result: 4 of 6 pairs pass (exit 1)" in out


def test_relative_model_folder_is_relative_to_the_manifest(folder: Path, cli: Any, tiny_llama: Path) -> None:
    shutil.copytree(tiny_llama, folder / "models" / "tiny")
    path = _write(folder, "deploy.yaml", "models: [models/tiny]\ntargets: [t4.json, T4]\n")
    code, out, err = cli("check", "--manifest", str(path), "--format", "json")
    data = json.loads(out)
    assert [p["target"] for p in data["pairs"]] == ["t4", "T4"]
    assert data["pairs"][0]["ok"] and code in (0, 1), err


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        (GOOD_YAML.replace("batch: 2", "batch: 0"), 14, "workload.batch", "greater than or equal to 1"),
        (GOOD_YAML.replace("      dtype: float16", "      dtype: float8"), 6, "models[1].from_pretrained.dtype",
         "'auto', 'float32', 'float16' or 'bfloat16'"),
        (GOOD_YAML.replace("      attn_implementation: sdpa", "      attn_impl: sdpa"), 7,
         "models[1].from_pretrained.attn_impl", "unknown field"),
        (GOOD_YAML.replace("  - env: a100.json", "  - env: a100.json\n    cpu: true"), 10, "targets[1]",
         "exactly one of env"),
        (GOOD_YAML.replace("workload:", "workloads:"), 13, "workloads", "unknown field"),
        (GOOD_YAML.replace("models:\n", "models: []\nx:\n"), 1, "models", "at least 1"),
        (GOOD_YAML + "  batch: 3\n", 16, "workload.batch", "duplicate key"),
        ("models: [gpt2\n", 2, "", "not valid YAML"),
        (GOOD_YAML.replace("from_pretrained: recommend", "from_pretrained: recomend"), 3,
         "models[0].from_pretrained", "Input should be 'recommend'"),
    ],
    ids=["batch-0", "bad-dtype", "unknown-kwarg", "two-target-kinds", "unknown-top-level", "empty-models",
         "duplicate-key", "syntax", "typo-recommend"],
)
def test_bad_yaml_names_file_line_and_field(folder: Path, text: str, line: int, field: str, problem: str) -> None:
    path = _write(folder, "deploy.yaml", text)
    err = _error(path)
    assert (err.line, err.field) == (line, field)
    assert str(path) in str(err) and f"line {line}" in str(err) and problem in str(err)
    assert err.exit_code == 2 and "\n" not in str(err)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (GOOD_TOML.replace('dtype = "float16"', 'dtype = "float8"'), 12, "models[1].from_pretrained.dtype"),
        (GOOD_TOML.replace("batch = 2", "batch = -1"), 2, "workload.batch"),
        (GOOD_TOML.replace('env = "a100.json"', 'env = "a100.json"\ngpu = "T4"'), 18, "targets[1]"),
        (GOOD_TOML.replace("seq_len = 1024", "seq_len = = 3"), 3, ""),
    ],
    ids=["bad-dtype", "negative-batch", "two-target-kinds", "syntax"],
)
def test_bad_toml_names_file_line_and_field(folder: Path, text: str, line: int, field: str) -> None:
    err = _error(_write(folder, "deploy.toml", text))
    assert (err.line, err.field) == (line, field)


@pytest.mark.parametrize("suffix", ["yaml", "toml"])
def test_trust_remote_code_anywhere_is_refused(folder: Path, cli: Any, suffix: str) -> None:
    if suffix == "yaml":
        text = GOOD_YAML.replace("      attn_implementation: sdpa", "      attn_implementation: sdpa\n      trust_remote_code: false")
        line, field = 8, "models[1].from_pretrained.trust_remote_code"
    else:
        text = GOOD_TOML.replace("[[targets]]\nenv = \"t4.json\"", "[[targets]]\nenv = \"t4.json\"\nTrust-Remote-Code = true", 1)
        line, field = 17, "targets[0].Trust-Remote-Code"
    path = _write(folder, f"deploy.{suffix}", text)
    code, out, err = cli("check", "--manifest", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"line {line}, field {field}" in err and "never enable remote code" in err


def test_top_level_key_is_refused_too(folder: Path) -> None:
    err = _error(_write(folder, "deploy.yaml", "trust_remote_code: true\n" + GOOD_YAML))
    assert (err.line, err.field) == (1, "trust_remote_code")


def test_names_the_manifest_cannot_resolve_are_bad_input_with_their_line(folder: Path, cli: Any) -> None:
    path = _write(folder, "deploy.yaml", GOOD_YAML.replace("env: a100.json", "env: missing.json"))
    code, _, err = cli("check", "--manifest", str(path))
    assert code == 2 and "line 10, field targets[1]" in err and "missing.json" in err
    path = _write(folder, "deploy.yaml", GOOD_YAML.replace("model: gpt2", "model: no-such/model"))
    code, _, err = cli("check", "--manifest", str(path))
    assert code == 2 and "line 4, field models[1].model" in err and "no-such/model" in err
    path = _write(folder, "deploy.yaml", GOOD_YAML.replace("gpu: A100-80GB", "gpu: Z999"))
    code, _, err = cli("check", "--manifest", str(path))
    assert code == 2 and "line 11, field targets[2]" in err and "unknown GPU 'Z999'" in err


def test_manifest_arguments_do_not_mix_with_a_single_check(folder: Path, cli: Any) -> None:
    path = _write(folder, "deploy.yaml", GOOD_YAML)
    code, _, err = cli("check", "gpt2", "--manifest", str(path), "--gpu", "T4")
    assert code == 2 and "drop MODEL, --gpu" in err
    code, _, err = cli("check")
    assert code == 2 and "give MODEL, or --manifest FILE" in err
    for name, problem in (("deploy.json", "unknown file type"), ("absent.yaml", "no such file")):
        if name == "deploy.json":
            _write(folder, name, "{}")
        code, _, err = cli("check", "--manifest", str(folder / name))
        assert code == 2 and problem in err


def test_schema_doc_matches_the_model() -> None:
    """docs/manifest.md embeds the JSON Schema; regenerate it with scripts/gen_manifest_doc.py."""
    text = DOC.read_text()
    start = text.index("```json\n") + len("```json\n")
    embedded = json.loads(text[start:text.index("```", start)])
    assert embedded == Manifest.model_json_schema()
    for field in ("models", "targets", "workload", "from_pretrained", "assume", "seq_len"):
        assert f"`{field}`" in text
