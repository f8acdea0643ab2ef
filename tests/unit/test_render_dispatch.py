"""Renderers dispatch on the report's type (issue 26): render/kinds.py maps each report type to its renderer, and
every renderer there is has a type that reaches it (a new report type without a row fails here, not in a user's
terminal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.render import OutputFormat, render, text
import importlib

from advisor.render.kinds import REPORT_KINDS, report_kind

TEMPLATES = Path(__file__).resolve().parents[2] / "advisor" / "render" / "templates"


def test_every_renderer_has_a_report_type_and_every_type_a_renderer() -> None:
    names = set(REPORT_KINDS.values())
    text_renderers = set(text._RENDERERS) | {"history", "fullmatrix"}  # the matrix views: render/text_matrix.py
    assert names - {"fleet"} == text_renderers  # the fleet's text view is render/fleet_text.py, called by the CLI
    templated = {p.name.split(".")[0] for p in TEMPLATES.glob("*.j2")} - {"load", "load_tp", "bench"}  # emit's, bench's plot
    assert templated <= names


@pytest.mark.parametrize("dotted", sorted(REPORT_KINDS))
def test_every_row_names_a_report_type_that_exists(dotted: str) -> None:
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert f"{cls.__module__}.{cls.__qualname__}" == dotted  # a renamed or moved class fails here


def test_an_unknown_report_type_is_refused() -> None:
    class Stranger:
        pass

    with pytest.raises(TypeError, match="no renderer for a Stranger"):
        report_kind(Stranger())


def test_a_subclass_renders_as_its_base() -> None:
    from advisor.knowledge import load_knowledge
    from advisor.matrix.table import MatrixView, matrix_view
    from advisor.model.attention_support import table_for

    table, where = table_for(None, load_knowledge())
    view = matrix_view(table, where, None, None)

    class Narrower(MatrixView):
        pass

    assert report_kind(Narrower.model_validate(view.model_dump())) == "matrix"
    assert render(view, OutputFormat.TEXT).startswith("Attention support declared by transformers")
