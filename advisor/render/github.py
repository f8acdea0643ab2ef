"""GitHub Actions output: workflow-command annotations for stdout and a Markdown job summary.

Escaping follows GitHub's documented workflow-command syntax (`::error file=F,line=L,title=T::MESSAGE`),
as implemented by actions/toolkit's `escapeData` / `escapeProperty`: in the message `%`, CR and LF become
`%25`, `%0D`, `%0A`; in property values `:` and `,` become `%3A` and `%2C` as well. Writing the summary
to `$GITHUB_STEP_SUMMARY` is the CLI's job; this module only builds text.

Issue 25: every value (a model, folder or target name, a finding from a config) comes from the repository under
test, so after that escaping each one also passes `render.escape`: no control character, no legacy `##[`
command in an annotation, and in the summary `markdown_text` (no HTML, table syntax, code span or link).
"""

from __future__ import annotations

from advisor.fleet.manifest import CheckSuite, PairResult
from advisor.render.escape import markdown_text, terminal_safe, workflow_safe

__all__ = ["annotation_lines", "escape_data", "escape_property", "step_summary"]


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _safe(escaped: str) -> str:
    """An escaped value with its other control characters shown as escapes and no legacy command in it."""
    return workflow_safe(terminal_safe(escaped, keep_newlines=False))


def _command(kind: str, message: str, **props: str | int | None) -> str:
    given = ",".join(f"{k}={_safe(escape_property(str(v)))}" for k, v in props.items() if v is not None)
    data = _safe(escape_data(message))
    return f"::{kind} {given}::{data}" if given else f"::{kind}::{data}"


def _props(suite: CheckSuite, pair: PairResult) -> dict[str, str | int | None]:
    return {"file": suite.manifest, "line": pair.line if suite.manifest else None, "title": pair.name}


def annotation_lines(suite: CheckSuite) -> str:
    """One ::error per failing rule of each pair and one ::warning per warning; then a one-line total."""
    lines = []
    for pair in suite.pairs:
        for f in pair.failures:
            lines.append(_command("error", f"{f.code} {f.message}" + (f"\nfix: {f.fix}" if f.fix else ""),
                                  **_props(suite, pair)))
        for w in pair.warnings:
            lines.append(_command("warning", f"{w.code} {w.message}" + (f"\nfix: {w.fix}" if w.fix else ""),
                                  **_props(suite, pair)))
    failed = sum(1 for p in suite.pairs if not p.ok)
    lines.append(f"advisor check: {len(suite.pairs) - failed} of {len(suite.pairs)} model x target pairs pass")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return markdown_text(text)


def step_summary(suite: CheckSuite) -> str:
    """A Markdown table for the job summary page: one row per pair with its verdict, config and reasons."""
    title = f"advisor check {markdown_text(suite.manifest)}" if suite.manifest else "advisor check"
    failed = sum(1 for p in suite.pairs if not p.ok)
    seq = suite.workload.seq_len or "model default"
    lines = [
        f"### {title}: {'all pass' if suite.ok else f'{failed} of {len(suite.pairs)} pairs fail'}",
        "",
        f"Workload: batch {suite.workload.batch}, seq_len {seq}",
        "",
        "| Model | Target | Result | Configuration | Rules (fix) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in suite.pairs:
        reasons = "<br>".join(f"**{_cell(f.code)}** {_cell(f.message)}" + (f" (fix: {_cell(f.fix)})" if f.fix else "")
                              for f in p.failures)
        if not reasons and p.warnings:
            reasons = "<br>".join(_cell(f"{w.code} {w.message}") for w in p.warnings)
        verdict = ":white_check_mark: pass" if p.ok else ":x: fail"
        lines.append(f"| {_cell(p.model)} | {_cell(p.target)} | {verdict} | {_cell(p.config or '-')} | {reasons or '-'} |")
    return "\n".join(lines) + "\n\n"
