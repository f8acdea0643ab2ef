"""Issue 28's audit, "fallbacks treated as failures": transformers 5.x dequantizes a pre-quantized FP8 checkpoint to
bf16 without a GPU or below compute capability 8.9, so the load works at the unquantized size. The plan is a plan
with that figure and a warning; 4.57.6 raised, so there it stays a rejection. Hardware as snapshot data (--gpu)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FP8 = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}


@pytest.fixture
def fp8_folder(tmp_path: Path) -> Path:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024,
              "intermediate_size": 2816, "num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 4,
              "vocab_size": 32000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
              "quantization_config": FP8}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def _recommend(cli: Any, folder: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("recommend", str(folder), "--format", "json", *args)
    return code, json.loads(out)


def test_an_a100_plans_the_dequantized_load(cli: Any, fp8_folder: Path) -> None:
    code, result = _recommend(cli, fp8_folder, "--gpu", "A100-80GB")
    assert code == 0 and result["from_pretrained"]["dtype"] == "bfloat16"
    warned = [f for f in result["findings"] if f["code"] == "QUANT009"]
    assert warned and warned[0]["severity"] == "warn" and "dequantizes it to bf16" in warned[0]["message"]
    params = result["model"]["param_count"]
    assert result["memory"]["weights_bytes"] >= 1.9 * params  # 2 bytes a weight, not the checkpoint's 1


def test_the_cpu_plans_the_dequantized_load(cli: Any, fp8_folder: Path) -> None:
    code, result = _recommend(cli, fp8_folder, "--cpu")
    assert code == 0 and any(f["code"] == "QUANT009" and f["severity"] == "warn" for f in result["findings"])


def test_before_5_0_it_is_still_refused(cli: Any, fp8_folder: Path) -> None:
    code, out, _ = cli("check", str(fp8_folder), "--gpu", "A100-80GB", "--assume", "transformers==4.57.6",
                       "--format", "json")
    failures = [f for f in json.loads(out)["failures"] if f["code"] == "QUANT009"]
    assert code == 1 and failures and "transformers 4.57.6 refuses it" in failures[0]["message"]
    assert "compute capability >= 8.9" in failures[0]["message"]
