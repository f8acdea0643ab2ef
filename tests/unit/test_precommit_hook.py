"""The shipped pre-commit hook, run by the real `pre-commit try-repo` in a temporary git repository.

pre-commit builds the hook's virtualenv from this checkout (language: python; pip needs only PyPI), so
the first run takes about a minute; PRE_COMMIT_HOME is kept under the test cache so later runs reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"
CACHE = Path(os.environ.get("ADVISOR_TEST_CACHE", Path.home() / ".cache" / "advisor-tests"))
HOOK = "advisor-check-manifest"

PASSING = """\
models:
  - model: models/tiny
    from_pretrained: {dtype: float16, attn_implementation: sdpa}
targets:
  - env: t4.json
workload: {batch: 1, seq_len: 128}
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args], cwd=repo,
                   check=True, capture_output=True)


def _try_repo(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(CACHE / "pre-commit"), "PRE_COMMIT_COLOR": "never"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), HOOK, *args], check=False, cwd=repo,
                          env=env, capture_output=True, text=True, timeout=1200)


def test_hook_definition_is_valid() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == HOOK and hook["entry"] == "advisor check --manifest" and hook["pass_filenames"] is False
    import re

    files = re.compile(hook["files"])
    assert all(files.search(p) for p in ("deploy.yaml", "ops/deploy.toml", "models/tiny/config.json"))
    assert not any(files.search(p) for p in ("README.md", "deploy.yaml.bak", "src/app.py"))


@pytest.mark.slow
def test_pre_commit_try_repo_runs_the_manifest_check(tmp_path: Path) -> None:
    if shutil.which("git") is None or (ROOT / ".git").exists() is False:
        pytest.skip("needs git and a git checkout of the advisor")
    repo = tmp_path / "deploy-repo"
    (repo / "models" / "tiny").mkdir(parents=True)
    _git(repo, "init", "-q")
    shutil.copy(ENVS / "t4_bnb_fa2.json", repo / "t4.json")
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "vocab_size": 1000, "max_position_embeddings": 256, "torch_dtype": "float32"}
    (repo / "models" / "tiny" / "config.json").write_text(json.dumps(config))
    (repo / "deploy.yaml").write_text(PASSING)
    _git(repo, "add", "-A")

    passed = _try_repo(repo, "--all-files")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "advisor check --manifest" in passed.stdout and "Passed" in passed.stdout

    _git(repo, "commit", "-qm", "deploy")
    (repo / "notes.txt").write_text("unrelated\n")
    _git(repo, "add", "notes.txt")
    skipped = _try_repo(repo)
    assert skipped.returncode == 0 and "(no files to check)Skipped" in skipped.stdout, skipped.stdout

    # A model config change alone triggers the check: bfloat16 stored + FA2 on a T4 fails.
    (repo / "deploy.yaml").write_text(PASSING.replace("dtype: float16, attn_implementation: sdpa",
                                                      "dtype: bfloat16, attn_implementation: flash_attention_2"))
    _git(repo, "commit", "-qam", "switch to FA2")
    (repo / "models" / "tiny" / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    _git(repo, "add", "models/tiny/config.json")
    failed = _try_repo(repo)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout and "ATTN005" in failed.stdout and "DTYPE001" in failed.stdout
    assert "[XX] models/tiny on t4: flash_attention_2 / bfloat16" in failed.stdout
