"""Issue 25, "Pre-quantized configs" and "Flags and snapshots": bounds on what a stranger's file or a flag may say.

Each attack is a real file (a config.json with a hostile `quantization_config`, a `--config` kwargs file, an `--env`
snapshot) or a real flag given to the real CLI; each must end with exit 2 and one line on stderr naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"
ENV = ENVS / "a100_80gb_fa2_bnb.json"
TINY = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
        "max_position_embeddings": 256}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error: ") and "Traceback" not in err, err
    return lines[0]


def _folder(tmp_path: Path, config: dict[str, Any]) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


QUANTIZED = {
    "negative-bits-gptq": ({"quant_method": "gptq", "bits": -4, "group_size": 128}, "quantization_config.bits"),
    "negative-bits-hqq": ({"quant_method": "hqq", "nbits": -4}, "quantization_config.nbits"),
    "negative-bits-compressed": ({"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": -4, "group_size": 128}}}}, "num_bits"),
    "huge-bits": ({"quant_method": "hqq", "nbits": 10**400}, "quantization_config.nbits"),
    "huge-bits-compressed": ({"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 10**400}}}}, "num_bits"),
    "huge-group": ({"quant_method": "gptq", "bits": 4, "group_size": 10**30}, "quantization_config.group_size"),
    "method-object": ({"quant_method": {"name": "gptq"}}, "quantization_config.quant_method"),
    "method-list": ({"quant_method": ["gptq"]}, "quantization_config.quant_method"),
    "flag-not-bool": ({"load_in_4bit": "yes"}, "quantization_config.load_in_4bit"),
    "not-an-object": ("gptq-4bit", "quantization_config"),
}


@pytest.mark.parametrize("command", ["recommend", "check", "doctor"])
@pytest.mark.parametrize("case", list(QUANTIZED))
def test_a_hostile_quantization_config_is_exit_2(guarded_cli: Any, tmp_path: Path, case: str, command: str) -> None:
    qc, field = QUANTIZED[case]
    folder = _folder(tmp_path, {**TINY, "quantization_config": qc})
    code, out, err = guarded_cli(command, str(folder), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert field in line and "config.json" in line, line


def test_a_sane_quantization_config_is_still_planned(guarded_cli: Any, tmp_path: Path) -> None:
    folder = _folder(tmp_path, {**TINY, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -1,
                                                              "desc_act": False, "sym": True}})
    code, out, err = guarded_cli("recommend", str(folder), "--env", str(ENV), "--format", "json")
    assert code in (0, 1), err
    assert "GPTQ 4-bit" in out


KWARGS = {
    "attn-not-a-string": ({"attn_implementation": 7}, "attn_implementation"),
    "device-map-list": ({"device_map": ["cuda:0"]}, "device_map"),
    "quantization-config-string": ({"quantization_config": "4bit"}, "quantization_config"),
    "quant-method-list": ({"quantization_config": {"quant_method": ["bitsandbytes"], "load_in_4bit": True}},
                          "quantization_config.quant_method"),
    "max-memory-list": ({"max_memory": {"0": ["20GiB"]}}, "max_memory"),
    "load-in-4bit-object": ({"load_in_4bit": {"x": 1}}, "load_in_4bit"),
}


@pytest.mark.parametrize("case", list(KWARGS))
def test_check_config_with_a_wrong_type_is_exit_2(guarded_cli: Any, tmp_path: Path, case: str) -> None:
    kwargs, field = KWARGS[case]
    config = tmp_path / "kwargs.json"
    config.write_text(json.dumps(kwargs))
    code, out, err = guarded_cli("check", "gpt2", "--env", str(ENV), "--config", str(config))
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert f"field {field}" in line and str(config) in line, line


def test_the_advisors_own_plan_is_still_a_valid_config(guarded_cli: Any, tmp_path: Path) -> None:
    code, out, err = guarded_cli("recommend", "meta-llama/Meta-Llama-3-8B", "--env", str(ENV), "--quantize", "4bit",
                                 "--format", "json")
    assert code == 0, err
    assert json.loads(out)["from_pretrained"]["quantization_config"]  # the kwargs carry a BitsAndBytesConfig dict
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    code, out, err = guarded_cli("check", "meta-llama/Meta-Llama-3-8B", "--env", str(ENV), "--config", str(plan))
    assert code == 0, err


def _snapshot(tmp_path: Path, change: Any) -> Path:
    data = json.loads(ENV.read_text())
    change(data)
    path = tmp_path / "env.json"
    path.write_text(json.dumps(data))
    return path


def _free_above_total(data: dict[str, Any]) -> None:
    data["gpus"][0]["memory_free_bytes"] = data["gpus"][0]["memory_total_bytes"] + 1


def _duplicate_index(data: dict[str, Any]) -> None:
    data["gpus"] = [data["gpus"][0], dict(data["gpus"][0], uuid="GPU-other")]


def _ram_above_total(data: dict[str, Any]) -> None:
    data["host"]["ram_available_bytes"] = data["host"]["ram_total_bytes"] * 2


SNAPSHOTS = {"free-above-total": (_free_above_total, "memory_free_bytes"),
             "duplicate-gpu-index": (_duplicate_index, "GPU index 0 appears twice"),
             "ram-above-total": (_ram_above_total, "ram_available_bytes")}


@pytest.mark.parametrize("command", ["recommend", "check", "doctor"])
@pytest.mark.parametrize("case", list(SNAPSHOTS))
def test_an_inconsistent_snapshot_is_exit_2(guarded_cli: Any, tmp_path: Path, case: str, command: str) -> None:
    change, words = SNAPSHOTS[case]
    env = _snapshot(tmp_path, change)
    argv = (command, "gpt2", "--env", str(env)) if command != "doctor" else (command, "--env", str(env))
    code, out, err = guarded_cli(*argv)
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert words in line and "env.json" in line, line


FLAGS = {
    "timeout-1e308": (["smoke", "gpt2", "--timeout", "1e308"], "--timeout"),
    "bench-timeout-1e308": (["bench", "gpt2", "--cpu", "--timeout", "1e308"], "--timeout"),
    "budget-1e308": (["tune", "gpt2", "--budget-seconds", "1e308"], "--budget-seconds"),
    "batch-1e30": (["recommend", "gpt2", "--cpu", "--batch", "1" + "0" * 30], "--batch"),
    "seq-len-huge": (["check", "gpt2", "--cpu", "--seq-len", "9" * 400], "--seq-len"),
    "generate-huge": (["smoke", "gpt2", "--generate", "9" * 50], "--generate"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_a_numeric_flag_out_of_range_is_exit_2(guarded_cli: Any, case: str) -> None:
    argv, flag = FLAGS[case]
    code, out, err = guarded_cli(*argv)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and flag in err, err
