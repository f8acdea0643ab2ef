"""Issue 15, "Bad input that crashes (exit 3) or hangs" and "Nonsense that is planned with exit 0".

One test per item of the issue (parametrized over the commands and files it applies to), with real
files (FIFOs from mkfifo, /dev/zero, a symlink to /proc/self/mem) and the real CLI in-process. Each must
end with exit 2 and one line on stderr naming the file, the field and what is wrong, within a deadline.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / "tests" / "fixtures" / "envs" / "a100_80gb_fa2_bnb.json"
TINY = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
        "max_position_embeddings": 256}

# Every planning command that reads MODEL/config.json, with a target that needs no probing.
MODEL_COMMANDS = {
    "recommend": ["recommend", "{model}", "--env", str(ENV)],
    "check": ["check", "{model}", "--env", str(ENV)],
    "doctor": ["doctor", "{model}", "--env", str(ENV)],
    "smoke": ["smoke", "{model}", "--config", "{good_config}", "--cpu"],
    "bench": ["bench", "{model}", "--cpu", "--timeout", "5"],
}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith("advisor: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


def _folder(tmp_path: Path, content: bytes | dict[str, Any], name: str = "model") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    data = json.dumps(content).encode() if isinstance(content, dict) else content
    (folder / "config.json").write_bytes(data)
    return folder


def _run_model_command(cli: Any, command: str, model: Path, tmp_path: Path) -> tuple[int, str, str]:
    good = tmp_path / "kwargs.json"
    good.write_text(json.dumps({"dtype": "float32", "attn_implementation": "eager"}))
    argv = [a.format(model=model, good_config=good) for a in MODEL_COMMANDS[command]]
    result: tuple[int, str, str] = cli(*argv)
    return result


# ----------------------------------------------------------------------- encodings, nesting, numbers

ENCODINGS = {
    "invalid-utf8-bytes": b'{"model_type": "llama", "hidden_size": 64, "name": "\xff\xfe caf\xe9"}',
    "utf16-bom": json.dumps(TINY).encode("utf-16"),
    "utf16-be-bom": b"\xfe\xff" + json.dumps(TINY).encode("utf-16-be"),
    "utf8-bom": b"\xef\xbb\xbf" + json.dumps(TINY).encode(),
    "utf32": json.dumps(TINY).encode("utf-32"),
}


@pytest.mark.parametrize("command", ["recommend", "check", "doctor", "smoke", "bench"])
@pytest.mark.parametrize("case", list(ENCODINGS))
def test_item_config_not_utf8(case: str, command: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: config.json that is not UTF-8 (invalid bytes, a UTF-16 BOM)."""
    model = _folder(tmp_path, ENCODINGS[case])
    code, out, err = _run_model_command(guarded_cli, command, model, tmp_path)
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert str(model / "config.json") in line
    assert ("UTF-8" in line or "UTF-16" in line or "UTF-32" in line), line


NESTED = {
    "list-100k": "[" * 100_000 + "]" * 100_000,
    "object-100k": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "in-a-field-70": '{"model_type": "llama", "rope_scaling": ' + "[" * 70 + "]" * 70 + "}",
}


@pytest.mark.parametrize("case", list(NESTED))
@pytest.mark.parametrize("where", ["config.json", "--env", "check --config", "smoke --config"])
def test_item_deep_nesting(case: str, where: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: nesting deep enough to hit RecursionError, in config.json, an --env snapshot or a --config."""
    text = NESTED[case].encode()
    bad = tmp_path / "bad.json"
    bad.write_bytes(text)
    model = _folder(tmp_path, TINY)
    argv = {
        "config.json": ["recommend", str(_folder(tmp_path, text, "nested")), "--env", str(ENV)],
        "--env": ["recommend", str(model), "--env", str(bad)],
        "check --config": ["check", str(model), "--config", str(bad), "--env", str(ENV)],
        "smoke --config": ["smoke", str(model), "--config", str(bad), "--cpu"],
    }[where]
    code, _, err = guarded_cli(*argv)
    line = _one_error_line(err)
    assert code == 2
    assert "nested" in line and ("bad.json" in line or "nested/config.json" in line), line


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["hidden_size", "num_attention_heads", "text_config.num_hidden_layers"])
def test_item_non_finite_size(token: str, field: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: NaN, Infinity or 1e400 in a size."""
    placeholder = "__TOKEN__"
    config: dict[str, Any] = dict(TINY)
    if field.startswith("text_config."):
        config = {**TINY, "text_config": {field.split(".")[1]: placeholder}}
    else:
        config[field] = placeholder
    model = _folder(tmp_path, json.dumps(config).replace(f'"{placeholder}"', token).encode())
    code, _, err = guarded_cli("recommend", str(model), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and str(model / "config.json") in line
    assert f"field {field}" in line and "finite" in line, line


def _with_field(field: str, value: Any) -> dict[str, Any]:
    """TINY with `field` set to `value`, at the top level or (`text_config.NAME`) in text_config."""
    config: dict[str, Any] = dict(TINY)
    if field.startswith("text_config."):
        config["text_config"] = {field.split(".")[1]: value}
    else:
        config[field] = value
    return config


@pytest.mark.parametrize("value", ["4096", [4096], {"value": 4096}, 4096.5, True, 1e30])
@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "vocab_size", "num_key_value_heads",
                                   "text_config.hidden_size", "text_config.num_attention_heads"])
def test_item_wrong_type_where_an_int_belongs(value: Any, field: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: a string, list or object where an int belongs (in the top level or in text_config)."""
    model = _folder(tmp_path, _with_field(field, value))
    code, _, err = guarded_cli("check", str(model), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and str(model / "config.json") in line
    assert f"field {field} must be a whole number" in line, line


@pytest.mark.parametrize("value", ["LlamaForCausalLM", [1], [["LlamaForCausalLM"]], {"0": "LlamaForCausalLM"},
                                   ["Llama\x1b[2JForCausalLM"], [None]])
def test_item_architectures_not_a_list_of_strings(value: Any, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: `architectures` that is not a list of strings."""
    model = _folder(tmp_path, {**TINY, "architectures": value})
    code, _, err = guarded_cli("recommend", str(model), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and str(model / "config.json") in line and "field architectures" in line, line


# ----------------------------------------------------------------------- files that cannot be read


def _unreadable(tmp_path: Path, how: str) -> Path:
    """A config.json that open() or read() refuses even to root.

    chmod 000 does not stop root (CAP_DAC_OVERRIDE), and these tests run as root in CI, so the cases that
    bind for root are a symlink to /proc/self/mem (a regular file to stat; reading offset 0, which is never
    mapped, fails with EIO) and a symlink loop (ELOOP). chmod 000 is tested too where the user is not root.
    """
    folder = tmp_path / how
    folder.mkdir()
    target = folder / "config.json"
    if how == "proc-self-mem":
        target.symlink_to("/proc/self/mem")
    elif how == "symlink-loop":
        target.symlink_to(target)
    else:
        target.write_text(json.dumps(TINY))
        target.chmod(0)
    return folder


@pytest.mark.parametrize("how", [
    "proc-self-mem",
    "symlink-loop",
    pytest.param("chmod-000", marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")),
])
@pytest.mark.parametrize("role", ["MODEL folder", "MODEL config.json", "--env", "--config"])
def test_item_unreadable_file(how: str, role: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: an unreadable file, as config.json, --env or --config."""
    if sys.platform != "linux":
        pytest.skip("/proc/self/mem is Linux")
    folder = _unreadable(tmp_path, how)
    bad = folder / "config.json"
    model = _folder(tmp_path, TINY)
    argv = {
        "MODEL folder": ["recommend", str(folder), "--env", str(ENV)],
        "MODEL config.json": ["recommend", str(bad), "--env", str(ENV)],
        "--env": ["recommend", str(model), "--env", str(bad)],
        "--config": ["check", str(model), "--config", str(bad), "--env", str(ENV)],
    }[role]
    code, _, err = guarded_cli(*argv)
    line = _one_error_line(err)
    assert code == 2 and str(bad) in line, line
    assert any(w in line for w in ("Input/output error", "symbolic link loop", "Permission denied")), line


@pytest.mark.parametrize("shape", ["one-long-component", "long-component-in-a-path", "hub-id-of-long-parts",
                                   "tilde-of-an-unknown-user"])
@pytest.mark.parametrize("role", ["MODEL", "--env", "--config"])
def test_item_name_longer_than_the_os_allows(shape: str, role: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: a name longer than the OS allows (ENAMETOOLONG)."""
    name = {
        "one-long-component": "x" * 300,
        "long-component-in-a-path": str(tmp_path / ("y" * 300) / "config.json"),
        "hub-id-of-long-parts": "a" * 200 + "/" + "b" * 200,
        "tilde-of-an-unknown-user": "~no-such-user-here/config.json",
    }[shape]
    model = _folder(tmp_path, TINY)
    argv = {
        "MODEL": ["recommend", name, "--env", str(ENV)],
        "--env": ["recommend", str(model), "--env", name],
        "--config": ["check", str(model), "--config", name, "--env", str(ENV)],
    }[role]
    code, _, err = guarded_cli(*argv)
    line = _one_error_line(err)
    assert code == 2
    assert len(line) < 1000  # the name is shortened, not echoed in full
    if shape in ("one-long-component", "long-component-in-a-path"):  # the others are names that do not exist
        assert "longer than the operating system allows" in line, line


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        path = tmp_path / "special" / "config.json"
        path.parent.mkdir()
        os.mkfifo(path)
        return path
    folder = tmp_path / "special"
    folder.mkdir()
    (folder / "config.json").symlink_to("/dev/zero")
    return folder / "config.json"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("role", ["MODEL folder", "MODEL config.json", "--env", "check --config", "smoke --config",
                                  "doctor --env", "probe --env"])
def test_item_fifo_or_device(kind: str, role: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: a FIFO or a device (/dev/zero) as config, --env or --config: no hang, no unbounded read."""
    bad = _special(tmp_path, kind)
    model = _folder(tmp_path, TINY)
    argv = {
        "MODEL folder": ["recommend", str(bad.parent), "--env", str(ENV)],
        "MODEL config.json": ["recommend", str(bad), "--env", str(ENV)],
        "--env": ["recommend", str(model), "--env", str(bad)],
        "check --config": ["check", str(model), "--config", str(bad), "--env", str(ENV)],
        "smoke --config": ["smoke", str(model), "--config", str(bad), "--cpu"],
        "doctor --env": ["doctor", "--env", str(bad)],
        "probe --env": ["probe", "--env", str(bad)],
    }[role]
    code, _, err = guarded_cli(*argv)  # a blocking open of the FIFO would trip the deadline
    line = _one_error_line(err)
    assert code == 2 and str(bad) in line
    assert ("FIFO" in line) if kind == "fifo" else ("device" in line), line


def test_item_dev_zero_directly(guarded_cli: Any, tmp_path: Path) -> None:
    """Item: /dev/zero itself (not a link to it) as --env and --config."""
    model = _folder(tmp_path, TINY)
    for argv in (["recommend", str(model), "--env", "/dev/zero"],
                 ["check", str(model), "--config", "/dev/zero", "--env", str(ENV)]):
        code, _, err = guarded_cli(*argv)
        assert code == 2 and "/dev/zero" in _one_error_line(err) and "device" in err


def test_item_oversized_file_is_refused_before_reading(guarded_cli: Any, tmp_path: Path) -> None:
    """Item (size cap): a 16 MiB+ config.json and a 64 MiB+ snapshot are refused from their size alone."""
    model = tmp_path / "big"
    model.mkdir()
    with open(model / "config.json", "wb") as handle:  # sparse: no disk used
        handle.truncate(16 * 1024 * 1024 + 1)
    code, _, err = guarded_cli("recommend", str(model), "--env", str(ENV))
    assert code == 2 and "16 MiB limit" in _one_error_line(err)
    env = tmp_path / "env.json"
    with open(env, "wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 1)
    code, _, err = guarded_cli("recommend", str(_folder(tmp_path, TINY)), "--env", str(env))
    assert code == 2 and "64 MiB limit" in _one_error_line(err)


@pytest.mark.parametrize("command", ["check", "smoke"])
def test_item_config_is_a_directory(command: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: `check --config DIR` (and smoke's)."""
    model = _folder(tmp_path, TINY)
    extra = ["--env", str(ENV)] if command == "check" else ["--cpu"]
    code, _, err = guarded_cli(command, str(model), "--config", str(tmp_path), *extra)
    line = _one_error_line(err)
    assert code == 2 and str(tmp_path) in line and "directory" in line, line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5", "1e400", "soon"])
@pytest.mark.parametrize("command", ["smoke", "bench"])
def test_item_timeout_refused_by_argparse(value: str, command: str, cli: Any) -> None:
    """Item: `--timeout nan|inf|0|-5` refused by argparse-level validation (before the model is read)."""
    code, out, err = cli(command, "no-such-model-is-read", f"--timeout={value}")
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert "--timeout" in line and repr(value) in line, line


# ----------------------------------------------------------------------- nonsense that was planned


@pytest.mark.parametrize(("field", "value"), [
    ("hidden_size", -4096), ("hidden_size", 0), ("num_attention_heads", -1), ("num_attention_heads", 0),
    ("num_hidden_layers", -2), ("num_hidden_layers", 0), ("vocab_size", -1), ("vocab_size", 0),
    ("num_attention_heads", 1e30), ("num_attention_heads", 10**30), ("max_position_embeddings", -1),
    ("max_position_embeddings", 0), ("intermediate_size", -1), ("num_key_value_heads", -2), ("head_dim", 0),
    ("text_config.hidden_size", -64),
])
@pytest.mark.parametrize("command", ["recommend", "check", "doctor"])
def test_item_nonsense_sizes_refused_before_any_plan(field: str, value: Any, command: str, guarded_cli: Any,
                                                     tmp_path: Path) -> None:
    """Item: negative or zero hidden_size, heads, layers or vocab; heads of 1e30; a negative
    max_position_embeddings (a negative seq_len). Refused with exit 2 before any plan."""
    model = _folder(tmp_path, _with_field(field, value))
    code, out, err = guarded_cli(command, str(model), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert f"field {field}" in line and str(model / "config.json") in line, line


@pytest.mark.parametrize(("change", "words"), [
    ({"num_attention_heads": 5}, "num_attention_heads 5 does not divide hidden_size 64"),
    ({"num_key_value_heads": 3}, "num_key_value_heads 3 does not divide num_attention_heads 4"),
    ({"num_key_value_heads": 8}, "num_key_value_heads 8 does not divide num_attention_heads 4"),
    ({"hidden_size": None, "d_model": None}, "hidden_size (or d_model, n_embd, dim) is missing"),
    ({"num_hidden_layers": None}, "num_hidden_layers (or n_layer, num_layers) is missing"),
])
def test_item_inconsistent_shape(change: dict[str, Any], words: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: heads must divide hidden when head_dim is not given, KV heads divide heads, sizes present."""
    config = {k: v for k, v in {**TINY, **change}.items() if v is not None}
    model = _folder(tmp_path, config)
    code, _, err = guarded_cli("recommend", str(model), "--env", str(ENV))
    line = _one_error_line(err)
    assert code == 2 and words in line, line


def test_item_head_dim_given_allows_an_uneven_split(guarded_cli: Any, tmp_path: Path) -> None:
    """Item (control): with head_dim given (Gemma: 3072 hidden, 16 heads of 256) the shape is valid."""
    model = _folder(tmp_path, {**TINY, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16})
    code, _, err = guarded_cli("recommend", str(model), "--env", str(ENV))
    assert code in (0, 1) and "error" not in err


def test_item_latent_attention_heads_need_not_divide_hidden(guarded_cli: Any, tmp_path: Path) -> None:
    """Item (control): multi-head latent attention sizes its heads with qk_nope/qk_rope/v_head_dim, so GLM-4.7-Flash's
    20 heads over a hidden size of 2048 are valid: a tiny Glm4MoeLite of that shape plans (it was refused)."""
    import transformers

    config = transformers.Glm4MoeLiteConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=5, num_key_value_heads=5, n_routed_experts=4, num_experts_per_tok=2, kv_lora_rank=16,
        q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16, max_position_embeddings=128)
    transformers.Glm4MoeLiteForCausalLM(config).save_pretrained(tmp_path / "glm")
    code, out, err = guarded_cli("recommend", str(tmp_path / "glm"), "--env", str(ENV), "--format", "json")
    assert code in (0, 1) and "error" not in err, err
    assert json.loads(out)["from_pretrained"]


def _snapshot(tmp_path: Path, edit: Any) -> Path:
    raw = json.loads(ENV.read_text())
    edit(raw)
    path = tmp_path / "env.json"
    path.write_text(json.dumps(raw))
    return path


SNAPSHOT_NONSENSE = {
    "garbage-torch-version": (lambda r: r["torch"].update(version="not.a.version!"), "field torch.version"),
    "garbage-torch-library-version": (lambda r: r["libraries"]["torch"].update(version="2.x-final"),
                                      "field libraries.torch.version"),
    "garbage-transformers-version": (lambda r: r["libraries"]["transformers"].update(version="five"),
                                     "field libraries.transformers.version"),
    "negative-device-count": (lambda r: r["torch"].update(device_count=-1), "field torch.device_count"),
    "negative-gpu-memory": (lambda r: r["gpus"][0].update(memory_total_bytes=-85899345920),
                            "field gpus[0].memory_total_bytes"),
    "negative-free-memory": (lambda r: r["gpus"][0].update(memory_free_bytes=-1), "field gpus[0].memory_free_bytes"),
    "negative-ram": (lambda r: r["host"].update(ram_total_bytes=-1), "field host.ram_total_bytes"),
    "float-memory": (lambda r: r["gpus"][0].update(memory_total_bytes=8.5e10), "field gpus[0].memory_total_bytes"),
    "compute-capability-negative": (lambda r: r["gpus"][0].update(compute_capability={"major": -8, "minor": 0}),
                                    "field gpus[0].compute_capability.major"),
}


@pytest.mark.parametrize("case", list(SNAPSHOT_NONSENSE))
@pytest.mark.parametrize("command", ["recommend", "doctor", "probe"])
def test_item_snapshot_nonsense_refused(case: str, command: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item: a snapshot with a garbage torch or transformers version, a negative device_count or negative memory."""
    edit, words = SNAPSHOT_NONSENSE[case]
    env = _snapshot(tmp_path, edit)
    argv = {"recommend": ["recommend", str(_folder(tmp_path, TINY)), "--env", str(env)],
            "doctor": ["doctor", "--env", str(env)], "probe": ["probe", "--env", str(env)]}[command]
    code, out, err = guarded_cli(*argv)
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert str(env) in line and words in line, line


def test_item_snapshot_nonsense_refused_by_the_python_api(tmp_path: Path) -> None:
    """Item (API): the same bounds hold for `advisor.recommend(..., env=FILE)`."""
    import advisor
    from advisor.errors import AdvisorError

    env = _snapshot(tmp_path, lambda r: r["torch"].update(device_count=-3))
    with pytest.raises(AdvisorError, match="torch.device_count"):
        advisor.recommend(str(_folder(tmp_path, TINY)), env=env)


# ----------------------------------------------------------------------- the meta-device build


def test_item_a_million_layers_uses_the_closed_form_count_with_a_note(guarded_cli: Any, tmp_path: Path) -> None:
    """Item: `num_hidden_layers: 1000000` must not hang building the meta model: closed form, with a note."""
    config = {**TINY, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "num_hidden_layers": 1_000_000}
    model = _folder(tmp_path, config)
    code, out, err = guarded_cli("recommend", str(model), "--env", str(ENV), "--format", "json")
    assert code in (0, 1), err
    spec = json.loads(out)["model"]
    assert spec["param_count_method"] == "estimate"
    assert "1000000 layers" in spec["param_count_note"] and "meta device" in spec["param_count_note"]
    assert spec["param_count"] > 10**14  # about 150M parameters a layer, a million times
    code, out, _ = guarded_cli("recommend", str(model), "--env", str(ENV))
    assert "closed-form count: 1000000 layers" in out


@pytest.mark.parametrize("field", ["num_local_experts", "max_position_embeddings"])
def test_item_huge_counts_skip_the_meta_build(field: str, guarded_cli: Any, tmp_path: Path) -> None:
    """Item (meta cap by size): a count past 2**24 (experts, positions) is not handed to the meta build."""
    model = _folder(tmp_path, {**TINY, field: 2**30})
    code, out, err = guarded_cli("recommend", str(model), "--env", str(ENV), "--format", "json")
    assert code in (0, 1), err
    spec = json.loads(out)["model"]
    assert spec["param_count_method"] == "estimate" and field in spec["param_count_note"]


def test_item_small_model_still_counted_on_the_meta_device(guarded_cli: Any, tmp_path: Path) -> None:
    """Item (control): below the caps the exact meta-device count is used and no note is added."""
    code, out, err = guarded_cli("recommend", str(_folder(tmp_path, TINY)), "--env", str(ENV), "--format", "json")
    assert code in (0, 1), err
    spec = json.loads(out)["model"]
    assert spec["param_count_method"] == "meta-device" and spec["param_count_note"] is None
