"""No code from a model folder or a file runs without --trust-remote-code (issue 15), proven with sentinels.

Every hostile Python file below writes to a sentinel file when it is imported. Each command (recommend, check,
doctor, doctor --smoke, smoke, bench) and the Python API runs against real tiny saved models on the CPU, and the
sentinel must never appear. Control tests load the same folders with transformers and `trust_remote_code=True`, and
the sentinel does appear: the hostile files really are executable, so the absence elsewhere means something.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import advisor  # noqa: E402
from advisor.errors import RemoteCodeError
from advisor.isolation.child import run_child  # noqa: E402
from advisor.model.remote_code import CODE_KEYS, child_kwargs, refuse_code_keys  # noqa: E402
from advisor.model.resolve import resolve_model  # noqa: E402
from advisor.probe.target import TargetSpec, resolve_target  # noqa: E402
from advisor.prove.bench import run_bench  # noqa: E402
from advisor.prove.smoke import options_from_json, run_smoke  # noqa: E402

PLAIN = {"dtype": "float32", "attn_implementation": "eager"}


def _hostile_files(folder: Path, sentinel: Path) -> None:
    """A modeling file, a custom generate and a tokenizer class, each leaving a mark in `sentinel` on import."""
    mark = f"open({str(sentinel)!r}, 'a').write(__name__ + '\\n')\n"
    (folder / "modeling_evil.py").write_text(
        mark + "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilForCausalLM(LlamaForCausalLM):\n    config_class = LlamaConfig\n"
    )
    (folder / "custom_generate").mkdir()
    (folder / "custom_generate" / "generate.py").write_text(mark + "def generate(model, *args, **kwargs):\n    return None\n")
    (folder / "tokenization_evil.py").write_text(
        mark + "from transformers import PreTrainedTokenizerFast\nclass EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )


def _edit(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# Each variant: how the folder asks for code. "native_auto_map" is allowed (transformers ignores an auto_map on a
# model_type it implements when trust_remote_code=False); every other one is refused without the flag.
AUTO_MAP = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM", "AutoModel": "modeling_evil.EvilForCausalLM"}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "native_auto_map": ("config.json", {"auto_map": AUTO_MAP}),
    "custom_type_auto_map": ("config.json", {"auto_map": AUTO_MAP, "model_type": "evil_llm"}),
    "config_trust_remote_code": ("config.json", {"trust_remote_code": True}),
    "tokenizer_auto_map": ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}}),
    "generation_custom_generate": ("generation_config.json", {"custom_generate": "."}),
    "generation_trust_remote_code": ("generation_config.json", {"trust_remote_code": True}),
}
REFUSED = [v for v in VARIANTS if v != "native_auto_map"]
WHY = {
    "custom_type_auto_map": "config.json has auto_map",
    "config_trust_remote_code": "config.json sets `trust_remote_code`",
    "tokenizer_auto_map": "tokenizer_config.json has auto_map",
    "generation_custom_generate": "generation_config.json sets `custom_generate`",
    "generation_trust_remote_code": "generation_config.json sets `trust_remote_code`",
}


def _make(tiny_llama: Path, tmp_path: Path, variant: str) -> tuple[Path, Path]:
    """A copy of the tiny Llama with the hostile files and the variant's keys; returns (folder, sentinel)."""
    folder = tmp_path / f"model_{variant}"
    shutil.copytree(tiny_llama, folder)
    sentinel = tmp_path / "SENTINEL"
    _hostile_files(folder, sentinel)
    name, changes = VARIANTS[variant]
    _edit(folder / name, **changes)
    if variant != "native_auto_map":  # the modeling code is reachable in every variant
        _edit(folder / "config.json", auto_map=AUTO_MAP)
    return folder, sentinel


@pytest.fixture
def native(tiny_llama: Path, tmp_path: Path) -> tuple[Path, Path]:
    return _make(tiny_llama, tmp_path, "native_auto_map")


def _one_line(err: str, *needles: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("advisor: error: ")
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------------------ the hostile files are real


def test_control_the_flag_in_transformers_does_run_the_hostile_files(native: tuple[Path, Path]) -> None:
    """Without this, 'the sentinel never appears' could hold because the fixture is broken."""
    import transformers

    folder, sentinel = native
    transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    marks = sentinel.read_text().split()
    assert any(m.endswith("modeling_evil") for m in marks), marks
    assert any("generate" in m for m in marks), marks  # from_pretrained ran custom_generate/generate.py


def test_control_tokenizer_auto_map_runs_with_the_flag(tiny_llama: Path, tmp_path: Path) -> None:
    import transformers

    folder, sentinel = _make(tiny_llama, tmp_path, "tokenizer_auto_map")
    transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert any(m.endswith("tokenization_evil") for m in sentinel.read_text().split())


# ------------------------------------------------------------------------------ folders that ask for code


@pytest.mark.parametrize("variant", REFUSED)
@pytest.mark.parametrize("command", ["recommend", "check", "doctor", "smoke", "bench"])
def test_every_command_refuses_a_folder_that_asks_for_code(
    cli: Any, tiny_llama: Path, tmp_path: Path, variant: str, command: str
) -> None:
    folder, sentinel = _make(tiny_llama, tmp_path, variant)
    code, out, err = cli(command, str(folder), "--cpu")
    assert code == 2 and out == ""
    _one_line(err, WHY[variant], "--trust-remote-code")
    assert not sentinel.exists()


@pytest.mark.parametrize("variant", REFUSED)
def test_the_python_api_refuses_a_folder_that_asks_for_code(tiny_llama: Path, tmp_path: Path, variant: str) -> None:
    folder, sentinel = _make(tiny_llama, tmp_path, variant)
    calls = [
        lambda: advisor.recommend(str(folder), cpu=True),
        lambda: advisor.check(str(folder), cpu=True),
        lambda: advisor.doctor(str(folder), cpu=True),
        lambda: advisor.load(str(folder), cpu=True),
    ]
    for call in calls:
        with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
            call()
    assert not sentinel.exists()


def test_the_flag_lets_a_folder_that_asks_for_code_through(tiny_llama: Path, tmp_path: Path) -> None:
    folder, _ = _make(tiny_llama, tmp_path, "tokenizer_auto_map")
    assert resolve_model(str(folder), trust_remote_code=True).trust_remote_code is True


# ------------------------------------------------------------------------------ code keys in --config files


CONFIGS = {
    **{key: {**PLAIN, key: True if key == "trust_remote_code" else "main"} for key in CODE_KEYS},
    "nested_in_a_plan": {"chosen": {"label": "x", "from_pretrained": {**PLAIN, "trust_remote_code": True}}, "alternatives": []},
    "in_a_list": [PLAIN, {**PLAIN, "code_revision": "abc"}],
}


@pytest.mark.parametrize(("command", "which"), [
    (command, which) for command in ("check", "smoke") for which in CONFIGS
    if not (command == "check" and which == "in_a_list")  # check takes one configuration (an object)
])
def test_a_code_key_in_a_config_file_is_refused(
    cli: Any, native: tuple[Path, Path], tmp_path: Path, which: str, command: str
) -> None:
    """The reported hole: `smoke MODEL --config` with "trust_remote_code": true ran the folder's modeling file."""
    folder, sentinel = native
    config = tmp_path / "hostile.json"
    config.write_text(json.dumps(CONFIGS[which]))
    code, out, err = cli(command, str(folder), "--cpu", "--config", str(config))
    key = "code_revision" if which == "in_a_list" else "trust_remote_code" if which == "nested_in_a_plan" else which
    assert code == 2 and out == ""
    _one_line(err, str(config), f"`{key}`" if which in CODE_KEYS else key, "--trust-remote-code")
    assert not sentinel.exists()


def test_the_advisors_own_plan_json_still_works_as_a_config(cli: Any, tiny_llama: Path, tmp_path: Path) -> None:
    """A plan carries `"trust_remote_code": false` (the model section); asking for nothing is not refused."""
    code, out, _ = cli("recommend", str(tiny_llama), "--cpu", "--format", "json")
    assert code == 0 and '"trust_remote_code": false' in out
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    code, _, err = cli("check", str(tiny_llama), "--cpu", "--config", str(plan))
    assert code == 0, err
    assert options_from_json(json.loads(out))  # smoke --config reads it too


@pytest.mark.parametrize("key", CODE_KEYS)
def test_the_python_api_refuses_code_keys_in_kwargs(native: tuple[Path, Path], key: str) -> None:
    folder, sentinel = native
    hostile = {**PLAIN, key: True if key == "trust_remote_code" else "main"}
    spec = resolve_model(str(folder))
    with pytest.raises(RemoteCodeError, match=f"`{key}`"):
        advisor.check(str(folder), config=hostile, cpu=True)
    with pytest.raises(RemoteCodeError, match=f"`{key}`"):
        run_smoke(spec, [hostile])
    with pytest.raises(RemoteCodeError, match=f"`{key}`"):
        run_bench(spec, resolve_target(TargetSpec(cpu=True)), [], baselines={"mine": hostile})
    assert not sentinel.exists()


def test_child_kwargs_takes_trust_only_from_the_flag() -> None:
    assert child_kwargs({**PLAIN, "trust_remote_code": False}, trust_remote_code=False) == {**PLAIN, "trust_remote_code": False}
    assert child_kwargs(PLAIN, trust_remote_code=True)["trust_remote_code"] is True
    with pytest.raises(RemoteCodeError):
        child_kwargs({**PLAIN, "trust_remote_code": True}, trust_remote_code=False)
    refuse_code_keys({"a": [{"b": {"revision": None, "trust_remote_code": False}}]}, source="x")  # asks for nothing


@pytest.mark.slow
def test_the_smoke_worker_refuses_trust_smuggled_past_the_parent(native: tuple[Path, Path]) -> None:
    """A request written by hand (no parent checks) still cannot turn remote code on in the child."""
    folder, sentinel = native
    request = {"path": str(folder), "auto_class": "AutoModelForCausalLM", "architecture": "LlamaForCausalLM",
               "generative": True, "is_encoder_decoder": False, "trust_remote_code": False, "batch": 1, "seq_len": 4,
               "generate_tokens": 0, "role": "attempt", "index": 0, "reference_file": None,
               "from_pretrained": {**PLAIN, "trust_remote_code": True}}
    result = run_child("advisor.prove.smoke_worker", request, timeout=300)
    assert result["ok"] is False and "trust_remote_code" in str(result["error"])
    assert not sentinel.exists()


# ------------------------------------------------------------------------------ runs that load: nothing executes


@pytest.mark.slow
def test_smoke_and_doctor_smoke_load_a_native_auto_map_folder_without_its_code(cli: Any, native: tuple[Path, Path], tmp_path: Path) -> None:
    folder, sentinel = native
    config = tmp_path / "plain.json"
    config.write_text(json.dumps(PLAIN))
    code, out, err = cli("smoke", str(folder), "--cpu", "--config", str(config), "--generate", "2", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    code, out, err = cli("doctor", str(folder), "--cpu", "--smoke", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["smoke"]["ok"] is True
    assert not sentinel.exists()


@pytest.mark.slow
def test_bench_loads_a_native_auto_map_folder_without_its_code(cli: Any, native: tuple[Path, Path]) -> None:
    folder, sentinel = native
    code, out, err = cli("bench", str(folder), "--cpu", "--workload", "decode", "--seq-len", "4", "--new-tokens", "2",
                         "--repeats", "1", "--attn", "eager", "--dtype", "float32", "--format", "json")
    assert code == 0, err
    assert any(r["ok"] for r in json.loads(out)["rows"])
    assert not sentinel.exists()


@pytest.mark.slow
def test_python_load_of_a_native_auto_map_folder_uses_transformers_own_class(native: tuple[Path, Path]) -> None:
    folder, sentinel = native
    model, tokenizer, report = advisor.load(str(folder), cpu=True, compare=False, generate_tokens=0)
    assert type(model).__name__ == "LlamaForCausalLM" and type(model).__module__.startswith("transformers.")
    assert report.ok and tokenizer is not None
    assert not sentinel.exists()
