"""docs/rules.md documents every registered rule and is regenerated from the registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from advisor.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def test_rules_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_rules_doc", ROOT / "scripts" / "gen_rules_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "rules.md").read_text() == module.render(), "run: python scripts/gen_rules_doc.py"


def test_every_rule_has_a_why_and_a_fix() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    for r in RULES:
        assert r.why and r.fix and r.title, r.code
