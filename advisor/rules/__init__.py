"""The rules: small named checks over the facts (target, model, tables, workload) that return findings with a
fix, never raise and never probe; and the judgements they share (which quantization methods are ready here,
what a load kernelizes, whether the FP8 Hub kernel is usable, `explain CODE`).

Importing this package registers every rule, in a stable order. May import: the vocabulary modules,
`advisor.io`, `advisor.isolation`, `advisor.knowledge` and `advisor.model`; never the probe (a rule reads the
snapshot it is given), the estimate, the plan or anything above them.
"""

from __future__ import annotations

from advisor.candidate import Candidate
from advisor.findings import Finding
from advisor.rules import attention, dtype, kernels, libraries, parallel, placement, planning, quantization, release, ssm  # noqa: F401  (registration)
from advisor.rules.base import RULES, Context, Rule

__all__ = ["RULES", "Rule", "run_candidate_rules", "run_environment_rules", "rule_by_code"]


def run_candidate_rules(ctx: Context, candidate: Candidate) -> list[Finding]:
    from advisor.rules.fix_guard import without_undeclared_sdpa

    return without_undeclared_sdpa(ctx, [f for r in RULES if r.scope == "candidate" for f in r(ctx, candidate)])


def run_environment_rules(ctx: Context) -> list[Finding]:
    return [f for r in RULES if r.scope == "environment" for f in r(ctx)]


def rule_by_code(code: str) -> Rule | None:
    return next((r for r in RULES if r.code == code.upper()), None)
