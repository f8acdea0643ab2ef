"""`advisor smoke --runtime onnxruntime`: refused with the working environment where optimum-onnx's pin
excludes the installed transformers, and proven end to end in a second virtual environment that has
transformers 4.57, optimum-onnx and onnxruntime (CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from advisor.prove.onnx import optimum_onnx_pin

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ADVISOR_TEST_CACHE", Path.home() / ".cache" / "advisor-tests"))
VENV_REQUIREMENTS = ["torch==2.13.0", "transformers==4.57.*", "optimum-onnx", "onnxruntime"]


def _installed_transformers() -> str:
    import transformers

    return str(transformers.__version__)


def test_outside_the_pin_exits_1_with_the_environment_that_works(cli: Any, tiny_llama: Path) -> None:
    pin = optimum_onnx_pin()
    if Version(_installed_transformers()) in SpecifierSet(pin.transformers):
        pytest.skip("the installed transformers is inside optimum-onnx's pin")
    code, out, err = cli("smoke", str(tiny_llama), "--runtime", "onnxruntime")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert (f"transformers {_installed_transformers()} is installed, but optimum-onnx {pin.optimum_onnx} requires "
            f"transformers{pin.transformers}") in err
    # the newest release inside the pin that the shipped history knows, pinned exactly
    assert "An environment that works: python3 -m venv .venv-onnx && .venv-onnx/bin/pip install torch==" in err
    assert "'transformers==4.57.6'" in err and f"'optimum-onnx=={pin.optimum_onnx}'" in err


def test_pytorch_options_do_not_apply_to_onnxruntime(cli: Any, tiny_llama: Path) -> None:
    code, _, err = cli("smoke", str(tiny_llama), "--runtime", "onnxruntime", "--all", "--dtype", "float16")
    assert code == 2 and "--dtype, --all choose PyTorch configurations" in err


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=False,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        message = f"pip install {' '.join(args)} failed in {venv}: {proc.stderr.strip()[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def ort_venv() -> Iterator[Path]:
    """A second venv (cached across runs) with transformers 4.57 + optimum-onnx + onnxruntime, and this checkout."""
    venv = CACHE / f"onnx-venv-py{sys.version_info.major}{sys.version_info.minor}"
    marker = venv / ".advisor-ready"
    started = time.perf_counter()
    if not marker.is_file() or marker.read_text() != " ".join(VENV_REQUIREMENTS):
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(venv, *VENV_REQUIREMENTS)
        marker.write_text(" ".join(VENV_REQUIREMENTS))
    _pip(venv, "-e", str(ROOT))
    sys.stderr.write(f"\n[onnx venv ready in {time.perf_counter() - started:.0f} s: {venv}]\n")
    yield venv


MAKE_MODEL = """
import sys, torch, transformers
torch.manual_seed(0)
kind, out = sys.argv[1], sys.argv[2]
if kind == "llama":
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=1000, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(config)
else:
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, vocab_size=1000, max_position_embeddings=128, num_labels=3)
    model = transformers.BertForSequenceClassification(config)
model.save_pretrained(out)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "ort_class"), [("llama", "ORTModelForCausalLM"),
                                                  ("bert", "ORTModelForSequenceClassification")])
def test_onnxruntime_path_in_a_transformers_4_57_venv(ort_venv: Path, tmp_path: Path, kind: str, ort_class: str) -> None:
    python = ort_venv / "bin" / "python"
    model = tmp_path / kind
    subprocess.run([str(python), "-c", MAKE_MODEL, kind, str(model)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_STEP_SUMMARY")}
    proc = subprocess.run([str(ort_venv / "bin" / "advisor"), "smoke", str(model), "--runtime", "onnxruntime",
                           "--format", "json"], check=False, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["error"] is None
    assert report["ort_class"] == ort_class and report["provider"] == "CPUExecutionProvider"
    assert report["versions"]["transformers"].startswith("4.57.") and "optimum-onnx" in report["versions"]
    assert report["export_seconds"] > 0 and report["load_seconds"] > 0 and report["latency_ms"] > 0
    assert 0 <= report["max_abs_diff"] <= report["tolerance"] <= 1e-2
    assert report["inputs"]["input_ids"] == [2, 16]
