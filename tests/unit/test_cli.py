"""The CLI contracts: exit codes, one-line errors, atomic -o, and the JSON shapes other tools read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advisor.render import OutputFormat

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
T4 = ["--env", str(ENVS / "t4_bnb_fa2.json")]




def test_doctor_json_names_versions_and_missing_libraries(cli: Any) -> None:
    code, out, _ = cli("doctor", "--format", "json", "--cpu")
    data = json.loads(out)
    libs = data["environment"]["libraries"]
    assert libs["torch"]["installed"] and libs["torch"]["version"]
    assert libs["transformers"]["installed"] and libs["transformers"]["version"]
    for dist in ("flash-attn", "bitsandbytes", "optimum", "onnxruntime"):
        assert dist in libs
    items = {i["name"]: i for s in data["sections"] if s["title"] == "Kernels and libraries" for i in s["items"]}
    assert items["flash-attn"]["value"].startswith(("missing: ", libs["flash-attn"]["version"] or "?"))
    assert code == 0 and data["schema_version"] == 1


def test_doctor_with_model_in_every_format(cli: Any, tmp_path: Path) -> None:
    for fmt in OutputFormat:
        if fmt is OutputFormat.PYTHON:
            continue
        out_file = tmp_path / f"report.{fmt.value}"
        code, _, err = cli("doctor", "gpt2", *T4, "--format", fmt.value, "-o", str(out_file))
        assert code == 0, err
        text = out_file.read_text()
        assert "sdpa" in text
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html.split("</title>")[0]


def test_html_is_autoescaped(cli: Any, tmp_path: Path) -> None:
    env = json.loads((ENVS / "cpu_only.json").read_text())
    env["host"]["cpu"] = "<script>alert(1)</script>"
    path = tmp_path / "env.json"
    path.write_text(json.dumps(env))
    code, out, _ = cli("doctor", "--env", str(path), "--format", "html")
    assert "<script>alert(1)</script>" not in out and "&lt;script&gt;" in out


def test_recommend_json_contract(cli: Any) -> None:
    code, out, _ = cli("recommend", "meta-llama/Llama-2-7b-hf", *T4, "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert {"from_pretrained", "memory", "alternatives", "rejected", "findings", "schema_version"} <= set(data)
    assert {"weights_bytes", "kv_cache_bytes", "total_bytes", "budget_bytes", "fits"} <= set(data["memory"])
    assert all({"option", "rule", "reason", "fix"} <= set(r) for r in data["rejected"])
    assert {"from_pretrained", "memory"} <= set(data["alternatives"][0])
    assert "flash_attention_2" in {r["option"] for r in data["rejected"]}


def test_recommend_python_format_is_runnable_source(cli: Any) -> None:
    code, out, _ = cli("recommend", "gpt2", "--cpu", "--format", "python")
    assert code == 0
    compile(out, "plan.py", "exec")


def test_recommend_exit_1_when_nothing_is_viable(cli: Any) -> None:
    code, out, _ = cli("recommend", "meta-llama/Llama-2-70b-hf", "--env", str(ENVS / "t4_plain.json"))
    assert code == 1 and "MEM001" in out and "QUANT001" in out


def test_check_contract_and_exit_codes(cli: Any, tmp_path: Path) -> None:
    code, out, _ = cli("check", "gpt2", *T4, "--attn", "flash_attention_2", "--dtype", "float16", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and set(data) >= {"ok", "failures", "warnings"}
    assert [f["code"] for f in data["failures"]] == ["ATTN005"]
    code, out, _ = cli("check", "gpt2", *T4, "--attn", "sdpa", "--dtype", "float16", "--format", "json")
    assert code == 0 and json.loads(out)["ok"] is True
    # a recommend JSON is a valid --config
    code, out, _ = cli("recommend", "gpt2", *T4, "--format", "json")
    config = tmp_path / "plan.json"
    config.write_text(out)
    code, out, _ = cli("check", "gpt2", *T4, "--config", str(config), "--format", "json")
    assert code == 0, out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "gpt2", "--cpu", "--attn", "flash_attention_9"], "unknown attention implementation"),
        (["recommend", "gpt2", "--gpu", "NoSuchGPU"], "unknown GPU"),
        (["recommend", "gpt2", "--env", "/no/such/file.json"], "no such file"),
        (["recommend", "no-such-org/no-such-model", "--cpu"], "not a local folder"),
        (["recommend", "gpt2", "--cpu", "--format", "yaml"], "invalid choice"),
        (["recommend", "gpt2", "--cpu", "--batch", "0"], "must be at least 1"),
        (["recommend", "gpt2", "--cpu", "--assume", "torch"], "DIST==VERSION"),
        (["doctor", "--cpu", "-o", "/no/such/dir/report.txt"], "does not exist"),
        (["check", "gpt2", "--cpu", "--config", "/no/such.json"], "does not exist"),
        (["matrix", "--transformers", "3.0.0"], "older than the first stored release"),
        (["matrix", "--transformers", "abc"], "not a transformers version"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli: Any, argv: list[str], message: str) -> None:
    code, _, err = cli(*argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_remote_code_needs_consent(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "my_custom_llm", "auto_map": {"AutoModel": "modeling_x.M"}}))
    (tmp_path / "modeling_x.py").write_text("raise SystemExit('executed!')\n")
    code, _, err = cli("recommend", str(tmp_path), "--cpu")
    assert code == 2 and "--trust-remote-code" in err


def test_failed_run_leaves_existing_output_untouched(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous report")
    code, _, _ = cli("recommend", "gpt2", "--gpu", "NoSuchGPU", "-o", str(out))
    assert code == 2 and out.read_text() == "previous report"
    assert list(tmp_path.iterdir()) == [out]


def test_probe_writes_a_reloadable_snapshot(cli: Any, tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    code, _, _ = cli("probe", "--format", "json", "-o", str(snap), "--no-import-check")
    assert code == 0
    code, out, _ = cli("recommend", "gpt2", "--env", str(snap), "--format", "json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_matrix_json_shape(cli: Any) -> None:
    code, out, _ = cli("matrix", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["transformers"]
    row = next(a for a in data["architectures"] if a["model_type"] == "llama")
    assert set(row) >= {"model_type", "class", "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"}
    assert row["sdpa"] is True and row["flash_attention_2"] is True
