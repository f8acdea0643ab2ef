"""A stranger's config.json or snapshot cannot write to the terminal or into a Markdown/HTML report (issue 15).

ANSI/OSC sequences must show as escapes in text output, `<script>` / `<img onerror>` must not reach Markdown or
HTML raw, and a lone surrogate must not crash `doctor -o`. The values travel the real way: a config.json written
to a folder whose name is hostile (the model's name in every report), and an `--env` snapshot (GPU name, CPU,
description). Hostile `architectures` / `model_type` values themselves are refused before any report (exit 2, an
escaped one-line error), so they can never reach one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from advisor.render import OutputFormat, render
from advisor.render.escape import terminal_safe

ROOT = Path(__file__).resolve().parents[2]
ANSI = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"  # set the window title, clear the screen, turn red
HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"
OUR_COLOURS = re.compile(r"\x1b\[(32|2|33|31|0)m")


def _model(tmp_path: Path, name: str = "model", architecture: str = "LlamaForCausalLM", **extra: Any) -> Path:
    """A config-only llama folder; a hostile `name` is the model's name in every report (a `/` in it nests)."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama", "architectures": [architecture], "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
              "max_position_embeddings": 256, **extra}
    # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a hostile file would carry it
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=True))
    return folder


def _snapshot(tmp_path: Path, text: str) -> Path:
    data = json.loads((ROOT / "tests/fixtures/envs/t4_plain.json").read_text())
    data["description"] = f"desc {text}"
    data["host"]["cpu"] = f"cpu {text}"
    for gpu in data["gpus"]:
        gpu["name"] = f"T4 {text}"
    path = tmp_path / "env.json"
    path.write_text(json.dumps(data, ensure_ascii=True))
    return path


def _no_raw_control(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text[:300])


@pytest.mark.parametrize(("command", "shows_name"), [("recommend", True), ("doctor", True), ("check", True)])  # check names the model since issue 31
def test_ansi_from_a_config_is_escaped_in_text_output(cli: Any, tmp_path: Path, command: str, shows_name: bool) -> None:
    folder = _model(tmp_path, f"model{ANSI}")
    code, out, err = cli(command, str(folder), "--gpu", "T4")
    assert code in (0, 1), err
    _no_raw_control(out + err)
    assert ("\\x1b]0;pwned\\x07" in out) is shows_name  # shown as an escape, so the reader sees the attempt


@pytest.mark.parametrize("field", ["model_type", "architectures"])
def test_ansi_in_a_model_type_never_reaches_the_terminal(cli: Any, tmp_path: Path, field: str) -> None:
    folder = _model(tmp_path, **({"model_type": f"llama{ANSI}"} if field == "model_type"
                                 else {"architecture": f"Llama{ANSI}ForCausalLM"}))
    for command in ("recommend", "doctor"):
        code, out, err = cli(command, str(folder), "--cpu")
        assert code == 2 and out == "" and err.count("\n") == 1 and field in err
        _no_raw_control(out + err)


def test_ansi_from_a_snapshot_is_escaped_in_text_output(cli: Any, tmp_path: Path) -> None:
    env = _snapshot(tmp_path, ANSI)
    for argv in (("doctor", "--env", str(env)), ("probe", "--env", str(env)), ("recommend", "gpt2", "--env", str(env))):
        code, out, err = cli(*argv)
        assert code in (0, 1), err
        _no_raw_control(out + err)
        assert "\\x1b[2J" in out


def test_colour_is_only_ours(tmp_path: Path) -> None:
    """With colour on, the only escape sequences left are the status marks' own SGR codes."""
    from advisor import api

    report = api.doctor(str(_model(tmp_path, f"model{ANSI}")), env=_snapshot(tmp_path, ANSI))
    text = render(report, OutputFormat.TEXT, color=True)
    assert OUR_COLOURS.search(text)  # colour still works
    _no_raw_control(OUR_COLOURS.sub("", text))


def test_control_characters_in_an_error_line_are_escaped(cli: Any, tmp_path: Path) -> None:
    code, out, err = cli("recommend", str(tmp_path / f"missing{ANSI}\nsecond line"), "--cpu")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    _no_raw_control(err)


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_html_from_a_config_or_snapshot_does_not_reach_a_report_raw(cli: Any, tmp_path: Path, fmt: str) -> None:
    folder = _model(tmp_path, f"model{HTML}")
    env = _snapshot(tmp_path, HTML)
    code, out, err = cli("doctor", str(folder), "--env", str(env), "--format", fmt)
    assert code in (0, 1), err
    assert "<script" not in out.lower() and "<img" not in out.lower()
    assert "&lt;script&gt;" in out if fmt == "html" else "&lt;script>" in out  # escaped, still readable
    assert out.count("&lt;script") >= 2  # both the model's name and the snapshot's GPU name


def test_markdown_escaping_keeps_requirements_readable() -> None:
    """Only `<` can open a tag in Markdown; `>= 8.0` in a finding stays as written in the raw file."""
    from advisor.matrix.history import full_matrix

    md = render(full_matrix(None), OutputFormat.MARKDOWN)
    assert ">= 8.0" in md and "&gt;" not in md


@pytest.mark.parametrize("fmt", ["markdown", "html", "json", "text"])
def test_a_lone_surrogate_does_not_crash_doctor_output(cli: Any, tmp_path: Path, fmt: str) -> None:
    folder = _model(tmp_path, "model\udcff")  # a file name that is not UTF-8: byte 0xff (surrogateescape)
    env = _snapshot(tmp_path, "\udfff")
    target = tmp_path / f"report.{fmt}"
    code, out, err = cli("doctor", str(folder), "--env", str(env), "--format", fmt, "-o", str(target))
    assert code in (0, 1), err
    written = target.read_bytes().decode("utf-8")  # it encodes, so it decodes
    assert "udcff" in written and "udfff" in written  # shown as escapes, not dropped
    code, out, err = cli("doctor", str(folder), "--env", str(env), "--format", fmt)
    out.encode("utf-8")  # stdout gets an encodable text too


def test_terminal_safe_keeps_text_and_layout() -> None:
    assert terminal_safe("a\tb\nc — ü 日本") == "a\tb\nc — ü 日本"
    assert terminal_safe("x\ny", keep_newlines=False) == "x\\x0ay"
    assert terminal_safe("\u202eevil\x9b31m") == "\\u202eevil\\x9b31m"
