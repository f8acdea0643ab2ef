"""Issue 31 item 2: every command the docs show, run, with the exit status and the output they claim.

docs/ci.md's "Real runs": each `### title: `COMMAND`` heading is followed by a fenced block of the command's
stdout ending in `exit status: N`; each is run in docs/examples/ci/ and compared line by line (JUnit's measured
`time="..."` attributes aside). The README's first screens are compared as a prefix of the real output.
Regenerate the blocks after an intended output change with ADVISOR_REGEN_DOCS=1 (then read the diff).
Not run here, with the reason: the pre-commit transcript (needs git, pre-commit and a clone of the advisor to
install from) and the ONNX Runtime transcript (needs a second virtual environment; tests/unit/test_onnx_smoke.py
proves that path).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CI_DOC = ROOT / "docs" / "ci.md"
EXAMPLES = ROOT / "docs" / "examples" / "ci"
REGEN = bool(os.environ.get("ADVISOR_REGEN_DOCS"))
NOT_RUN = {  # heading text -> why this test does not run it
    "pre-commit, passing then failing": "needs git, pre-commit and a clone of the advisor for the hook to install",
}
_RUN = re.compile(r"^### (?P<title>[^\n]*?): `(?P<command>[^`]+)`\n(?P<between>(?:(?!```)[^\n]*\n)*?)"
                  r"```(?P<lang>text|xml)\n(?P<body>.*?)```", re.M | re.S)


def _runs() -> list[re.Match[str]]:
    return list(_RUN.finditer(CI_DOC.read_text()))


def _normal(text: str) -> str:
    return re.sub(r' time="[0-9.]+"', ' time="T"', text)


def _run(cli: Any, command: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[int, str]:
    words = shlex.split(command)
    while "=" in words[0]:  # VAR=value prefixes
        name, value = words.pop(0).split("=", 1)
        monkeypatch.setenv(name, str(tmp_path / value) if name == "GITHUB_STEP_SUMMARY" else value)
    assert words[0] == "advisor", command
    monkeypatch.chdir(cwd)
    code, out, _ = cli(*words[1:])
    return code, out


def test_ci_doc_real_runs_are_what_the_commands_print(cli: Any, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    runs = _runs()
    assert len(runs) >= 4, "the Real runs section lost its headings"
    text = CI_DOC.read_text()
    for match in reversed(runs):  # reversed: regenerating edits the text behind the later matches
        if "exit status:" not in match["body"]:
            continue
        code, out = _run(cli, match["command"], EXAMPLES, monkeypatch, tmp_path)
        shown = f"{out}exit status: {code}\n"
        if REGEN:
            text = text[:match.start("body")] + shown + text[match.end("body"):]
            continue
        assert _normal(match["body"]) == _normal(shown), match["command"]
    summary = (tmp_path / "summary.md").read_text()  # the github run's job summary, shown after its stdout
    head, sep, rest = text.partition("and appended to `summary.md` (the job summary page):\n\n")
    shown_summary, sep2, tail = rest.partition("\n### Failing, as JUnit")
    assert sep and sep2
    if REGEN:
        CI_DOC.write_text(head + sep + summary + sep2 + tail)
    else:
        assert shown_summary == summary
    titles = {m["title"] for m in runs} | set(re.findall(r"^### ([^\n:`]+)$", text, re.M))
    assert set(NOT_RUN) <= titles  # a skipped run still exists, under the name given for it


def test_the_shipped_ci_examples_exit_as_documented(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    assert cli("check", "--manifest", "deploy.yaml")[0] == 0
    assert cli("check", "--manifest", "deploy-failing.yaml")[0] == 1


def test_the_manifest_doc_example_passes(cli: Any, tmp_path: Path) -> None:
    """docs/manifest.md's example, with the folder and snapshot it names put in place."""
    transformers = pytest.importorskip("transformers")
    doc = (ROOT / "docs" / "manifest.md").read_text()
    example = re.search(r"```yaml\n(models:.*?)```", doc, re.S)
    assert example is not None
    (tmp_path / "deploy.yaml").write_text(example.group(1))
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=1000, num_labels=3)
    config.architectures = ["BertForSequenceClassification"]
    config.save_pretrained(tmp_path / "models" / "classifier")
    (tmp_path / "machines").mkdir()
    (tmp_path / "machines" / "prod-a100.json").write_text((ROOT / "tests" / "fixtures" / "envs" /
                                                           "a100_80gb_fa2_bnb.json").read_text())
    code, out, err = cli("check", "--manifest", str(tmp_path / "deploy.yaml"))
    assert code == 0, out + err


def test_readme_first_screen_is_the_real_output(cli: Any) -> None:
    """The README's `advisor recommend meta-llama/Meta-Llama-3-8B --gpu T4` block: a machine without
    bitsandbytes, as it says."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("the README's screen is for a machine without bitsandbytes")
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"`advisor recommend meta-llama/Meta-Llama-3-8B --gpu T4`.*?\n\n```\n(.*?)```", readme, re.S)
    assert block is not None
    code, out, _ = cli("recommend", "meta-llama/Meta-Llama-3-8B", "--gpu", "T4")
    shown = block.group(1).rstrip("\n").splitlines()
    if shown and shown[-1].strip() == "...":
        shown = shown[:-1]
    if REGEN:
        new = "\n".join(out.splitlines()[:len(shown)]) + "\n  ...\n"
        (ROOT / "README.md").write_text(readme[:block.start(1)] + new + readme[block.end(1):])
        return
    assert code == 1 and out.splitlines()[:len(shown)] == shown
