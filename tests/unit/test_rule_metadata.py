"""Rule metadata lives on the rule (issue 26): code, title, scope, fix and remedy are arguments of @rule, and the
planner's list of rules whose fix is another candidate is read from the rules, not kept beside them."""

from __future__ import annotations

from advisor.plan.verdict import switch_rules
from advisor.rules import RULES


def test_every_rule_carries_its_metadata() -> None:
    assert len({r.code for r in RULES}) == len(RULES) > 30
    for r in RULES:
        assert r.scope in ("candidate", "environment", "plan") and r.remedy in ("switch", "machine"), r.code
        assert r.title and r.fix and r.why, r.code


def test_switch_rules_are_read_from_the_rules() -> None:
    switch = switch_rules()
    assert switch == {r.code for r in RULES if r.remedy == "switch"}
    assert {"ATTN005", "DTYPE001", "MEM001"} <= switch
    for r in RULES:
        if r.code in switch:  # another candidate, never a change to the machine
            assert "pip install" not in r.fix, r.code
