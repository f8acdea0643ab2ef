"""A check suite (manifest or single check) in every format `advisor check` writes.

Issue 25: these go to CI logs, where a line starting with `::` is a command and a lone surrogate crashed the
write; each format passes its own boundary in `render.escape` (the document as a whole, then `encodable`).
"""

from __future__ import annotations

from advisor.fleet.manifest import CheckSuite
from advisor.render.escape import encodable, json_safe, text_output, workflow_safe

__all__ = ["SUITE_FORMATS", "render_suite"]

SUITE_FORMATS = ("text", "json", "markdown", "junit", "github")


def _text(suite: CheckSuite) -> str:
    seq = suite.workload.seq_len or "model default"
    lines = [f"Manifest: {suite.manifest}" if suite.manifest else "Check",
             f"Workload: batch {suite.workload.batch}, seq_len {seq}", ""]
    for p in suite.pairs:
        lines.append(f"[{'ok' if p.ok else 'XX'}] {p.name}: {p.config or 'no viable configuration'}")
        for f in p.failures:
            lines.append(f"       {f.code} {f.message}")
            if f.fix:
                lines.append(f"         fix: {f.fix}")
        for w in p.warnings:
            lines.append(f"       warning {w.code} {w.message}")
    failed = sum(1 for p in suite.pairs if not p.ok)
    lines += ["", f"Result: {len(suite.pairs) - failed} of {len(suite.pairs)} pairs pass" + ("" if suite.ok else " (exit 1)")]
    return "\n".join(lines) + "\n"


def render_suite(suite: CheckSuite, fmt: str) -> str:
    """Render in `fmt` (one of SUITE_FORMATS); github gives the annotations (the summary is separate)."""
    if fmt == "text":
        return encodable(text_output(_text(suite)))
    if fmt == "json":
        from advisor.render import to_json

        return json_safe(to_json(suite))
    if fmt == "github":  # its own commands; every value inside them is escaped (render/github.py)
        from advisor.render.github import annotation_lines

        return encodable(annotation_lines(suite))
    return encodable(workflow_safe(_document(suite, fmt)))


def _document(suite: CheckSuite, fmt: str) -> str:
    if fmt == "markdown":
        from advisor.render.github import step_summary

        return step_summary(suite)
    if fmt == "junit":
        from advisor.render.junit import render_junit

        return render_junit(suite)
    raise AssertionError(f"unhandled format {fmt}")
