"""The rule registry: importing this package registers every rule, in a stable order."""

from __future__ import annotations

from advisor.findings import Finding
from advisor.rules import attention, dtype, kernels, libraries, placement, planning, quantization, release, ssm  # noqa: F401  (registration)
from advisor.rules.base import RULES, Candidate, Context, Rule

__all__ = ["RULES", "Rule", "run_candidate_rules", "run_environment_rules", "rule_by_code"]


def run_candidate_rules(ctx: Context, candidate: Candidate) -> list[Finding]:
    return [f for r in RULES if r.scope == "candidate" for f in r(ctx, candidate)]


def run_environment_rules(ctx: Context) -> list[Finding]:
    return [f for r in RULES if r.scope == "environment" for f in r(ctx)]


def rule_by_code(code: str) -> Rule | None:
    return next((r for r in RULES if r.code == code.upper()), None)
