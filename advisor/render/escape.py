"""What a hostile config or snapshot cannot do to the reader: the output boundary of every renderer (issue 15).

A model name, model_type or architecture comes from a stranger's config.json, and a snapshot field from a stranger's
`--env` file. Raw, an ANSI/OSC sequence in one sets the terminal title or clears the screen, `<script>` or
`<img onerror>` runs in most Markdown viewers, and a lone surrogate (valid in JSON `"\\ud800"`, or from a
non-UTF-8 file name) makes `-o` die with UnicodeEncodeError. So:

- `terminal_safe`: text output and error lines show control characters (C0 but newline and tab, DEL, C1, and the
  bidirectional overrides of "Trojan Source") as `\\x1b`-style escapes, never raw;
- `markup_safe`: the jinja `finalize` of the Markdown and HTML templates: no interpolated value can open an HTML
  tag (HTML-escaped in HTML, `<` as `&lt;` in Markdown) or carry a control character, unless a template marked it
  safe on purpose;
- `encodable`: every rendered document gets lone surrogates as `\\udXXX` text, so it always encodes as UTF-8.

Issue 25 adds one layer per CI format, because those outputs are read by a machine that obeys them:

- `text_output` (text and GitHub stdout): `terminal_safe`, then `workflow_safe`: a line whose first
  non-blank characters are `::` would be a GitHub workflow command (`::error`, `::add-mask::`,
  `::stop-commands::`), and `##[` anywhere in a line a legacy one; both get their first character shown as an
  escape (`\\x3a:error`, `\\x23#[`), so no value from a config, a folder name or a store can issue a command;
- `xml_safe` (JUnit): any Unicode becomes characters XML 1.0 allows (control characters, lone surrogates,
  U+FFFE/U+FFFF as escapes), so the document is always well-formed;
- `markdown_text` (the Markdown summary): one line, with `&`, `<`, `>`, `|`, `\\`, backquote, `[` and `]` as
  character references, so a value opens no HTML, no table cell, no code span and no link or image.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

__all__ = ["code_block", "encodable", "fenced_text", "json_safe", "markdown_text", "markup_safe", "terminal_safe", "text_output", "workflow_safe",
           "xml_safe"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_AND_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, keep_newlines: bool = True) -> str:
    """`text` with every control character shown as an escape; newlines (and tabs) kept unless told otherwise."""
    return (_CONTROL if keep_newlines else _CONTROL_AND_NEWLINE).sub(_escaped, text)


@pass_eval_context
def markup_safe(eval_ctx: EvalContext, value: Any) -> Any:
    """Jinja `finalize`: each `{{ value }}` terminal-safe, and unable to open an HTML tag.

    HTML templates autoescape everything. In Markdown, raw HTML and autolinks can only start with `<` (CommonMark
    6.6, 6.5; an entity never becomes a tag), so `<` alone becomes `&lt;`, which every viewer shows as `<`; `>=` in
    a requirement stays readable in the raw file. Markup (marked safe by a template) passes as is.
    """
    if isinstance(value, Markup) or value is None or isinstance(value, (bool, int, float)):
        return value
    if eval_ctx.autoescape:
        return escape(terminal_safe(str(value)))
    # Markdown (issue 25): a value's own line break would let it start a heading, a table row or a command line
    return terminal_safe(str(value), keep_newlines=False).replace("<", "&lt;")


def code_block(value: Any) -> Markup:
    """Jinja filter for a multi-line value inside a fenced code block (shown as written there): control
    characters escaped, line breaks kept, no HTML escaping (a fence shows `&lt;` literally)."""
    return Markup(terminal_safe(str(value)))


def fenced_text(value: Any) -> Markup:
    """Jinja filter for outside text (model and GPU names) inside a fenced block: control characters escaped, `<` as
    `&lt;` (a viewer that renders HTML in a fence cannot see a tag; the reader sees the attempt) and a run of three or
    more backticks as quotes, so the value can never close the fence."""
    return Markup(_FENCE.sub(lambda m: "'" * len(m.group()), terminal_safe(str(value)).replace("<", "&lt;")))


def encodable(text: str) -> str:
    """`text` with lone surrogates as `\\udXXX` text: a report always encodes as UTF-8 (`doctor -o` never crashes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# GitHub's runner trims leading white space before it looks for `::` (ActionCommand.TryParseV2) and finds the
# legacy `##[` anywhere in a line (ActionCommand.TryParse); lines are split on LF (CR is escaped above).
_WORKFLOW_COMMAND = re.compile(r"(?m)^([^\S\n]*):(?=:)")
_LEGACY_COMMAND = re.compile(r"#(?=#\[)")
_NOT_XML = re.compile("[\ufffe\uffff]")
_FENCE = re.compile("`{3,}")
_MARKDOWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "\\": "&#92;", "`": "&#96;", "[": "&#91;",
             "]": "&#93;"}
_MARKDOWN_CHARS = re.compile("[" + re.escape("".join(_MARKDOWN)) + "]")


def workflow_safe(text: str) -> str:
    """No line of `text` can be read as a GitHub workflow command: a leading `::` becomes `\\x3a:`, `##[` `\\x23#[`."""
    text = _LEGACY_COMMAND.sub(r"\\x23", text)
    return _WORKFLOW_COMMAND.sub(lambda m: m.group(1) + "\\x3a", text)


def json_safe(text: str) -> str:
    """A JSON document (ASCII, so no raw control character or surrogate) without a legacy `##[` command: inside a
    string, `\\u0023` is the same `#`."""
    return _LEGACY_COMMAND.sub(r"\\u0023", text)


def text_output(text: str) -> str:
    """The boundary of every plain-text document (text and GitHub formats): no control character, no command."""
    return workflow_safe(terminal_safe(text))


def xml_safe(text: str) -> str:
    """`text` as characters XML 1.0 allows (tab and newline kept), the rest shown as escapes."""
    return _NOT_XML.sub(_escaped, terminal_safe(text))


def markdown_text(text: str) -> str:
    """`text` as one line of Markdown that renders as itself: no HTML, table cell, code span, link or image."""
    return _MARKDOWN_CHARS.sub(lambda m: _MARKDOWN[m.group()], terminal_safe(text, keep_newlines=False))
