"""Issue 26: the `kernels` package logs "Skipping publisher trust check for '<repo>' because Hugging Face Hub is in
offline mode." when importing a model module (gpt_neo) asks it for the flash-attention fallback while the CLI is
offline. Like transformers' logging, it reaches stderr only with -v."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = "publisher trust check"
# a gpt_neo config no table ships: its parameters are counted on the meta device, which imports the model module
CONFIG = {"architectures": ["GPTNeoForCausalLM"], "model_type": "gpt_neo", "hidden_size": 64, "num_layers": 2,
          "num_heads": 4, "attention_types": [[["global", "local"], 1]], "vocab_size": 500,
          "max_position_embeddings": 256, "window_size": 32, "intermediate_size": 128}


def _stderr(tmp_path: Path, *argv: str) -> str:
    env = {**os.environ, "ADVISOR_CACHE_DIR": str(tmp_path / f"cache-{len(list(tmp_path.iterdir()))}")}
    env.pop("ADVISOR_NO_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "advisor", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.stderr


def test_kernels_lines_only_with_verbose(tmp_path: Path) -> None:
    pytest.importorskip("kernels")
    model = tmp_path / "neo"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    if LINE not in _stderr(tmp_path, "recommend", str(model), "-v"):
        pytest.skip("this transformers/kernels pair does not ask kernels for a fallback here: nothing to silence")
    assert LINE not in _stderr(tmp_path, "recommend", str(model))
    assert LINE not in _stderr(tmp_path, "tune", str(model))  # exit 2 here (no GPU), after the model is counted
