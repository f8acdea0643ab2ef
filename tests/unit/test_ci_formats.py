"""`--format junit` and `--format github` read back by real parsers: an XSD validator and the documented
workflow-command grammar."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from advisor.render.github import escape_data, escape_property

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ENVS = FIXTURES / "envs"
XSD = FIXTURES / "junit.xsd"  # the JUnit XML format CI systems read, written for this project (see its header)

# GitHub's workflow-command syntax: ::COMMAND key=value,key=value::MESSAGE
# (docs.github.com/en/actions/reference/workflow-commands-for-github-actions). Escapes, as in
# actions/toolkit's escapeData/escapeProperty: % -> %25, CR -> %0D, LF -> %0A; in property values
# also : -> %3A and , -> %2C. So an unescaped ':' or ',' can never appear inside a property value.
COMMAND = re.compile(r"^::(?P<command>[a-z-]+)(?: (?P<props>[^:\r\n]*))?::(?P<message>[^\r\n]*)$")
PROPERTY = re.compile(r"^(?P<key>[A-Za-z]+)=(?P<value>[^,:]*)$")


def _unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    match = COMMAND.match(line)
    assert match, f"not a workflow command: {line!r}"
    props: dict[str, str] = {}
    for part in (match["props"] or "").split(",") if match["props"] else []:
        prop = PROPERTY.match(part)
        assert prop, f"bad property {part!r} in {line!r}"
        props[prop["key"]] = _unescape(prop["value"])
    return match["command"], props, _unescape(match["message"])


MANIFEST = """\
models:
  - model: gpt2
    from_pretrained: {dtype: bfloat16, attn_implementation: flash_attention_2}
  - meta-llama/Llama-3.2-1B
targets:
  - {env: t4.json, name: "T4, 100%: prod"}
  - env: a100.json
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    shutil.copy(ENVS / "t4_bnb_fa2.json", tmp_path / "t4.json")
    shutil.copy(ENVS / "a100_80gb_fa2_bnb.json", tmp_path / "a100.json")
    path = tmp_path / "deploy.yaml"
    path.write_text(MANIFEST)
    return path


def test_escaping_follows_the_documented_rules() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a,b: 50%\n") == "a%2Cb%3A 50%25%0A"
    assert _unescape(escape_property("x%0A,y:%")) == "x%0A,y:%"  # a literal %0A survives the round trip


def test_junit_validates_against_the_jenkins_schema(manifest: Path, cli: Any, tmp_path: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    out_file = tmp_path / "report.xml"
    code, _, err = cli("check", "--manifest", str(manifest), "--format", "junit", "-o", str(out_file))
    assert code == 1, err
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(out_file))  # raises with the offending element when invalid
    root = ET.parse(out_file).getroot()
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [
        "gpt2 on T4, 100%: prod", "gpt2 on a100", "meta-llama/Llama-3.2-1B on T4, 100%: prod",
        "meta-llama/Llama-3.2-1B on a100",
    ]
    assert root.get("tests") == "4" and root.get("failures") == "1"
    (failure,) = root.findall(".//failure")
    assert failure.get("type") == "ATTN005"
    assert failure.get("message", "").startswith("ATTN005, DTYPE001: ")
    assert "[DTYPE001]" in (failure.text or "") and "fix: use dtype=\"float16\"" in (failure.text or "")
    assert "configuration: sdpa / float16" in (cases[2].findtext("system-out") or "")


def test_junit_schema_check_can_fail(tmp_path: Path) -> None:
    """The validator really rejects a document that breaks the schema (a testcase without a name)."""
    xmlschema = pytest.importorskip("xmlschema")
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase/></testsuite></testsuites>')
    assert not xmlschema.XMLSchema(str(XSD)).is_valid(str(bad))


def test_single_check_junit_has_one_testcase(cli: Any) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    code, out, _ = cli("check", "gpt2", "--env", str(ENVS / "t4_plain.json"), "--attn", "flash_attention_2",
                       "--format", "junit")
    assert code == 1
    xmlschema.XMLSchema(str(XSD)).validate(out)
    (case,) = ET.fromstring(out).findall("testsuite/testcase")
    assert case.find("failure") is not None and "ATTN" in case.find("failure").get("type", "")  # type: ignore[union-attr]


def test_github_annotations_parse_with_the_documented_syntax(manifest: Path, cli: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = cli("check", "--manifest", str(manifest), "--format", "github")
    assert code == 1, err
    lines = out.splitlines()
    commands = [parse_annotation(line) for line in lines if line.startswith("::")]
    errors = [c for c in commands if c[0] == "error"]
    assert {e[2].split()[0] for e in errors} == {"ATTN005", "DTYPE001"}
    for _, props, message in errors:
        assert props == {"file": str(manifest), "line": "2", "title": "gpt2 on T4, 100%: prod"}
        assert "\nfix: " in message
    assert all(c[0] in ("error", "warning") for c in commands)
    assert lines[-1] == "advisor check: 3 of 4 model x target pairs pass"
    text = summary.read_text()
    assert text.startswith("# earlier step\n### advisor check")  # appended, never overwritten
    assert "| gpt2 | T4, 100%: prod | :x: fail |" in text and text.count(":white_check_mark: pass") == 3


def test_github_without_summary_variable_prints_annotations_only(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    code, out, _ = cli("check", "gpt2", "--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--format", "github")
    assert code == 0
    assert out.strip().splitlines()[-1] == "advisor check: 1 of 1 model x target pairs pass"
    assert all(parse_annotation(line)[0] == "warning" for line in out.splitlines() if line.startswith("::"))
