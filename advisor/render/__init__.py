"""Renderers: one per output format, each turning a finished report object into text. No probing here.

May import: every room below it (the report types live with what builds them: plan, prove, fleet, matrix);
never the CLI.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from jinja2 import Environment as Jinja
from jinja2 import PackageLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from advisor.render import text
from advisor.render.escape import code_block, encodable, fenced_text, json_safe, markup_safe, workflow_safe
from advisor.render.kinds import report_kind

__all__ = ["OutputFormat", "render", "to_json"]


class OutputFormat(str, Enum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    PYTHON = "python"


_JINJA = Jinja(
    loader=PackageLoader("advisor", "render/templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    finalize=markup_safe,  # every interpolated value HTML-escaped, Markdown included (render/escape.py)
)
_JINJA.filters["code_block"] = code_block
_JINJA.filters["fenced_text"] = fenced_text
# issue 31: Markdown and HTML lead like the text does (model, verdict, fix, ranking), from the same lines
_JINJA.filters["ranking_lines"] = lambda advice: text.ranking_lines(advice)[2:]


def to_json(obj: BaseModel | dict[str, Any]) -> str:
    data = obj.model_dump(mode="json", by_alias=True) if isinstance(obj, BaseModel) else obj
    return json.dumps(data, indent=2) + "\n"


def render(obj: BaseModel, fmt: OutputFormat, *, color: bool = False, verbose: bool = False) -> str:
    """Render a report in `fmt`, with the renderer its type has (render/kinds.py); always UTF-8-safe, and never a
    GitHub workflow command (issue 25: stdout of a CI job is read by the runner)."""
    text = _render(obj, fmt, kind=report_kind(obj), color=color, verbose=verbose)
    return encodable(json_safe(text) if fmt is OutputFormat.JSON else workflow_safe(text))


def _render(obj: BaseModel, fmt: OutputFormat, *, kind: str, color: bool, verbose: bool) -> str:
    if fmt is OutputFormat.JSON:
        return to_json(obj)
    if fmt is OutputFormat.TEXT:
        return text.render(obj, color=color, verbose=verbose)
    if fmt is OutputFormat.MARKDOWN:
        return _JINJA.get_template(f"{kind}.md.j2").render(r=obj)
    if fmt is OutputFormat.HTML:
        return _JINJA.get_template(f"{kind}.html.j2").render(r=obj)
    if fmt is OutputFormat.PYTHON:
        python = getattr(obj, "python", None)
        if python is None:
            raise ValueError("no Python snippet: nothing viable to load")
        return str(python)
    raise AssertionError(f"unhandled format {fmt}")
