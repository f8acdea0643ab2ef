"""Issue 26: one status vocabulary. A finding's severity and a report item's status are one enum (`Severity`);
the words doctor writes ("warning", "problem") are mapped from it in one place (`Severity.word`)."""

from __future__ import annotations

import pytest

from advisor.findings import Severity
from advisor.plan.doctor_report import Item, Section
from advisor.render import text


@pytest.mark.parametrize("severity", list(Severity))
def test_each_spelling_names_one_severity(severity: Severity) -> None:
    assert Severity.of(severity.word) is severity and Severity.of(severity.value) is severity


def test_report_words_are_unchanged() -> None:
    assert [s.word for s in Severity] == ["ok", "info", "warning", "problem"]
    item = Item(name="x", status="warning", value="v")  # a section's word is read back as the one enum
    assert item.status is Severity.WARN and item.model_dump(mode="json")["status"] == "warning"
    assert Item(name="y", status=Severity.FAIL, value="v").model_dump(mode="json")["status"] == "problem"
    assert Section(title="t", items=[item, Item(name="z", status="info", value="v")]).worst is Severity.WARN


def test_the_text_marks_are_keyed_by_the_enum() -> None:
    assert set(text._MARK) == set(Severity) and set(text._COLOR) == set(Severity)
    with pytest.raises(ValueError):
        Severity.of("warnings")
