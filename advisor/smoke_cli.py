"""`advisor smoke`: choose what to try (a config file, explicit options, or the plan), then prove it."""

from __future__ import annotations

import argparse

from advisor.errors import UsageError
from advisor.io.read_input import read_json_file
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.target import TargetSpec, resolve_target
from advisor.prove.smoke import SmokeReport, options_from_json, plan_options, run_smoke

__all__ = ["run_smoke_command"]


def run_smoke_command(args: argparse.Namespace) -> SmokeReport:
    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code)
    rejected: list[dict[str, str]] = []
    if args.config is not None:
        options = options_from_json(read_json_file(args.config, what="config file"),
                                    source=f"config file {args.config}")
    else:
        env = resolve_target(TargetSpec(cpu=args.cpu))
        request = PlanRequest(attn=args.attn, dtype=args.dtype or "auto", quantize=args.quantize or "auto")
        plan = make_plan(model, env, request)
        options = plan_options(plan)  # type: ignore[assignment]
        rejected = [{"option": r.option, "rule": r.rule, "reason": r.reason} for r in plan.rejected]
        if not options:
            reasons = "; ".join(f"{r.option}: {r.reason}" for r in plan.rejected[:3])
            raise UsageError(f"the plan has no viable configuration to smoke-test ({reasons})")
    report = run_smoke(model, options, all_candidates=args.all, generate_tokens=args.generate, timeout=args.timeout)
    return report.model_copy(update={"rejected": rejected})
