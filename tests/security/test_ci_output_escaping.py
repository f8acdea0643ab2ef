"""Issue 25, "CI outputs that a pull request can hijack": every format, every string from the repository under test.

A model name, folder name, target name or config string comes from the pull request. Text and GitHub output must
not let it start a line with `::` (a workflow command: `::error`, `::add-mask::`, `::stop-commands::`) or carry
`##[` (a legacy one); JUnit must stay well-formed XML (validated against tests/fixtures/junit.xsd); the Markdown
summary must carry no raw HTML and no table or heading syntax; no raw control character reaches any format; and a
lone surrogate never crashes a write. The attacks travel the real way (a folder name, a manifest's target name,
the real CLI); the property tests then feed arbitrary Unicode, surrogates included, to every renderer.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.findings import Finding, Severity
from advisor.fleet.grid import Fleet, FleetCell, FleetMachine
from advisor.fleet.manifest import CheckSuite, PairResult, Workload
from advisor.render import OutputFormat, render
from advisor.render.fleet_text import fleet_text
from advisor.render.suite import SUITE_FORMATS, render_suite

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / "tests" / "fixtures" / "envs" / "a100_80gb_fa2_bnb.json"
XSD = ROOT / "tests" / "fixtures" / "junit.xsd"
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
          "max_position_embeddings": 256}
# What a pull request can put in a folder name (anything but "/" and NUL).
HOSTILE = ("m\n::error title=pwned::owned\n  ::add-mask::secret\n::stop-commands::tok\nx ##[set-env name=A]b\n"
           "\x1b]0;title\x07\x1b[2J<script>alert(1)</script><img src=x onerror=alert(2)>| col |\n# heading\n")
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The annotations the advisor itself writes: ::error / ::warning, properties escaped (no ':' or ',' inside)
OUR_COMMAND = re.compile(r"^::(error|warning)(?: [^:\r\n]*)?::[^\r\n]*$")


def _commands(text: str) -> list[str]:
    """Lines the GitHub runner would treat as workflow commands (leading white space trimmed, as it does)."""
    return [line for line in text.split("\n") if line.lstrip().startswith("::") or "##[" in line]


def _assert_no_hijack(text: str, fmt: str) -> None:
    for line in _commands(text):
        assert fmt == "github" and OUR_COMMAND.match(line) and "##[" not in line, repr(line[:200])
    assert not RAW_CONTROL.search(text), repr(text[:300])
    text.encode("utf-8")  # no lone surrogate left


def _model(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder


def _validate_junit(text: str) -> ET.Element:
    xmlschema = pytest.importorskip("xmlschema")
    root = ET.fromstring(text.encode("utf-8"))  # well-formed
    xmlschema.XMLSchema(str(XSD)).validate(text)
    return root


# ----------------------------------------------------------------------------- the attacks, through the CLI


@pytest.mark.parametrize("fmt", SUITE_FORMATS)
def test_a_folder_name_cannot_issue_a_workflow_command(cli: Any, tmp_path: Path, fmt: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    folder = _model(tmp_path, HOSTILE.replace("/", "_"))
    code, out, err = cli("check", str(folder), "--env", str(ENV), "--format", fmt)
    assert code in (0, 1), err
    _assert_no_hijack(out + err, fmt)
    if fmt == "junit":
        _validate_junit(out)
    if fmt == "json":
        json.loads(out)  # still JSON: escaped for the runner, the same strings for a parser


REPORTS = [("recommend", "text"), ("recommend", "json"), ("recommend", "python"), ("check", "text"),
           ("check", "json"), ("doctor", "text"), ("doctor", "json"), ("doctor", "markdown"), ("doctor", "html")]


@pytest.mark.parametrize(("command", "fmt"), REPORTS, ids=[f"{c}-{f}" for c, f in REPORTS])
def test_plan_reports_cannot_issue_a_workflow_command(cli: Any, tmp_path: Path, command: str, fmt: str) -> None:
    folder = _model(tmp_path, HOSTILE)
    code, out, err = cli(command, str(folder), "--env", str(ENV), "--format", fmt)
    assert code in (0, 1), err
    _assert_no_hijack(out + err, fmt)


MANIFEST = """\
models:
  - model: "{model}"
targets:
  - gpu: A100-80GB
    name: "{target}"
"""


@pytest.mark.parametrize("fmt", SUITE_FORMATS)
def test_a_manifest_target_name_cannot_hijack_ci_output(cli: Any, tmp_path: Path, fmt: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    target = "T\\n::error file=x::pwned\\n\\e]0;t\\a<script>x</script>|y\\n# h"  # YAML double-quoted escapes
    path = tmp_path / "deploy.yaml"
    path.write_text(MANIFEST.format(model="gpt2", target=target))
    code, out, err = cli("check", "--manifest", str(path), "--format", fmt)
    assert code in (0, 1), err
    _assert_no_hijack(out + err, fmt)
    if fmt == "junit":
        _validate_junit(out)
    if fmt == "github":
        written = summary.read_text(encoding="utf-8")
        _assert_markdown_safe(written)


def _assert_markdown_safe(text: str) -> None:
    lower = text.lower()
    assert "<script" not in lower and "<img" not in lower, text
    for line in text.split("\n"):  # CommonMark ends lines at LF and CR only (CR is escaped)
        if line.startswith("#"):
            assert line.startswith("### advisor check"), line  # the one heading is ours
        if line.startswith("|"):
            assert line.count("|") == 6, line  # five cells: no value opened another
    assert not RAW_CONTROL.search(text)


def test_the_markdown_summary_escapes_html_and_table_syntax(cli: Any, tmp_path: Path) -> None:
    folder = _model(tmp_path, HOSTILE)
    code, out, err = cli("check", str(folder), "--env", str(ENV), "--format", "markdown")
    assert code in (0, 1), err
    _assert_markdown_safe(out)
    assert "&lt;script&gt;" in out and "&#124; col &#124;" in out  # shown, not interpreted


@pytest.mark.parametrize("fmt", SUITE_FORMATS)
def test_a_lone_surrogate_in_a_name_is_output_not_exit_3(cli: Any, tmp_path: Path, fmt: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    folder = _model(tmp_path, "model\udcff")  # a folder name that is not UTF-8 (byte 0xff)
    code, out, err = cli("check", str(folder), "--env", str(ENV), "--format", fmt)
    assert code in (0, 1), err
    assert "udcff" in out or fmt in ("text", "json", "github")  # a single check's text names no model
    out.encode("utf-8")
    target = tmp_path / f"out.{fmt}"
    code, _, err = cli("check", str(folder), "--env", str(ENV), "--format", fmt, "-o", str(target))
    assert code in (0, 1), err
    target.read_bytes().decode("utf-8")
    if fmt == "junit":
        _validate_junit(target.read_text(encoding="utf-8"))
    if fmt == "github":
        summary.read_bytes().decode("utf-8")


# ----------------------------------------------------------------------------- properties over arbitrary text

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)  # surrogates and controls included
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def suites(draw: Any) -> CheckSuite:
    pairs = []
    for _ in range(draw(st.integers(1, 3))):
        findings = [Finding(code=draw(ANY_TEXT), severity=Severity.FAIL, title=draw(ANY_TEXT), message=draw(ANY_TEXT),
                            fix=draw(ANY_TEXT)) for _ in range(draw(st.integers(0, 2)))]
        warnings = [Finding(code=draw(ANY_TEXT), severity=Severity.WARN, title="w", message=draw(ANY_TEXT),
                            fix=draw(ANY_TEXT)) for _ in range(draw(st.integers(0, 1)))]
        pairs.append(PairResult(model=draw(ANY_TEXT), target=draw(ANY_TEXT), mode="check", ok=not findings,
                                config=draw(st.none() | ANY_TEXT), failures=findings, warnings=warnings,
                                from_pretrained=draw(st.none() | st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=2)),
                                line=draw(st.none() | st.integers(1, 10**6))))
    return CheckSuite(ok=all(p.ok for p in pairs), manifest=draw(st.none() | ANY_TEXT), workload=Workload(), pairs=pairs)


@SETTINGS
@given(suites())
def test_property_text_and_github_never_issue_a_command(suite: CheckSuite) -> None:
    for fmt in ("text", "github"):
        _assert_no_hijack(render_suite(suite, fmt), fmt)


@SETTINGS
@given(suites())
def test_property_github_annotations_keep_their_grammar(suite: CheckSuite) -> None:
    lines = render_suite(suite, "github").splitlines()
    expected = sum(len(p.failures) + len(p.warnings) for p in suite.pairs)
    assert sum(1 for line in lines if OUR_COMMAND.match(line)) == expected
    assert len(lines) == expected + 1  # one line per annotation, then the total: no value added a line


@SETTINGS
@given(suites())
def test_property_junit_is_valid_xml_for_any_unicode(suite: CheckSuite) -> None:
    text = render_suite(suite, "junit")
    root = _validate_junit(text)
    assert len(root.findall("testsuite/testcase")) == len(suite.pairs)
    _assert_no_hijack(text, "junit")


@SETTINGS
@given(suites())
def test_property_markdown_summary_has_no_html_or_table_syntax(suite: CheckSuite) -> None:
    text = render_suite(suite, "markdown")
    _assert_markdown_safe(text)
    _assert_no_hijack(text, "markdown")
    assert text.count("\n| ") == len(suite.pairs) + 2  # header, rule and one row per pair: none added


@SETTINGS
@given(suites())
def test_property_json_round_trips_and_stays_ascii(suite: CheckSuite) -> None:
    text = render_suite(suite, "json")
    _assert_no_hijack(text, "json")
    assert text.isascii()
    assert json.loads(text)["pairs"][0]["model"] == suite.pairs[0].model  # the same strings, surrogates included


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)


_FLEET_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "p", "code", "table", "thead", "tr", "th",
               "tbody", "td", "br", "span", "h2", "ul", "li", "b", "strong", "em", "small", "a", "div", "section"}


@SETTINGS
@given(st.lists(ANY_TEXT, min_size=1, max_size=2), ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_property_fleet_html_markdown_and_text(models: list[str], machine: str, reason: str, fix: str) -> None:
    cells = [[FleetCell(model=m, machine=machine, ok=False, reasons=[reason], fix=fix)] for m in models]
    fleet = Fleet(models=models, machines=[FleetMachine(name=machine, description=reason)], batch=1, seq_len=None,
                  cells=cells)
    html = render(fleet, OutputFormat.HTML)
    parser = _Tags()
    parser.feed(html)
    assert parser.tags <= _FLEET_TAGS, parser.tags - _FLEET_TAGS  # no value opened a tag of its own
    _assert_no_hijack(html, "html")
    markdown = render(fleet, OutputFormat.MARKDOWN)
    assert "<script" not in markdown.lower() and "<img" not in markdown.lower()
    _assert_no_hijack(markdown, "markdown")
    _assert_no_hijack(fleet_text(fleet), "text")


def test_a_name_cannot_start_a_line_of_a_markdown_report(cli: Any, tmp_path: Path) -> None:
    """doctor --format markdown: a value's own line breaks are shown as escapes, so it opens no heading or row."""
    folder = _model(tmp_path, HOSTILE)
    snapshot = json.loads(ENV.read_text())
    snapshot["description"] = HOSTILE  # the target's name in the report's heading
    env = tmp_path / "env.json"
    env.write_text(json.dumps(snapshot))
    code, out, err = cli("doctor", str(folder), "--env", str(env), "--format", "markdown")
    assert code in (0, 1), err
    lines = out.split("\n")
    assert not any(line.startswith(("# heading", "| col |", "x ##[")) for line in lines), out
    assert "# heading" in out  # still shown, inside its line
    assert "```python" in out and "model.eval()\n" in out  # the code block keeps its own lines
