"""`advisor smoke`: choose what to try (a config file, explicit options, or the plan), then prove it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from advisor.cli.output import emit, write
from advisor.errors import UsageError
from advisor.findings import Rejection
from advisor.render import OutputFormat, render

if TYPE_CHECKING:
    from advisor.model.spec import ModelSpec
    from advisor.prove.onnx import OnnxSmokeReport
    from advisor.prove.smoke import SmokeReport

__all__ = ["cmd_smoke", "run_onnx_smoke_command", "run_smoke_command"]


def run_smoke_command(args: argparse.Namespace) -> SmokeReport:
    """A config file's options, or the plan's for this machine (what it rejected kept for the report)."""
    from advisor.io.read_input import read_json_file
    from advisor.model.resolve import resolve_model
    from advisor.plan.options import PlanRequest
    from advisor.plan.recommend import make_plan
    from advisor.probe.target import TargetSpec, resolve_target
    from advisor.prove.smoke import options_from_json, plan_options, run_smoke

    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code,
                          cache=not args.no_cache)
    rejected: list[Rejection] = []
    if getattr(args, "tp", None) is not None and args.tp > 1:
        return _tp_smoke(args, model)
    if args.config is not None:
        options = options_from_json(read_json_file(args.config, what="config file"),
                                    source=f"config file {args.config}")
    else:
        env = resolve_target(TargetSpec(cpu=args.cpu, cache=not args.no_cache))
        request = PlanRequest(attn=args.attn, dtype=args.dtype or "auto", quantize=args.quantize or "auto",
                              simulate=args.simulate, cache=not args.no_cache)
        plan = make_plan(model, env, request)
        options = plan_options(plan)  # type: ignore[assignment]
        rejected = list(plan.rejected)
        if not options:
            reasons = "; ".join(f"{r.option}: {r.message}" for r in plan.rejected[:3])
            raise UsageError(f"the plan has no viable configuration to smoke-test ({reasons})")
    report = run_smoke(model, options, all_candidates=args.all, generate_tokens=args.generate, timeout=args.timeout)
    return report.model_copy(update={"rejected": rejected})


def _tp_smoke(args: argparse.Namespace, model: ModelSpec) -> SmokeReport:
    """Issue 30: --tp N proves the plan's tensor parallel on N CPU processes; refused up front by its rules."""
    from advisor.plan.options import PlanRequest
    from advisor.plan.recommend import make_plan
    from advisor.probe.target import TargetSpec, resolve_target
    from advisor.prove.smoke import SmokeReport
    from advisor.prove.tp_smoke import run_tp_smoke

    if not args.cpu:
        raise UsageError("smoke --tp runs the ranks as CPU processes here: add --cpu (the GPU proof is a later issue)")
    if args.config is not None or args.all or args.quantize not in (None, "none"):
        raise UsageError("smoke --tp tests the plan's tensor-parallel kwargs: drop --config, --all and --quantize")
    plan = make_plan(model, resolve_target(TargetSpec(cpu=True, cache=not args.no_cache)),
                     PlanRequest(attn=args.attn, dtype=args.dtype or "float32", quantize="none", tp=args.tp,
                                 cache=not args.no_cache))
    p = plan.parallelism
    if p is None or p.kind != "tensor":
        failures = p.failures if p is not None else []
        return SmokeReport(ok=False, model=model.display, reference="not run: the plan refuses tensor parallel",
                           config=None, attempts=[],
                           rejected=[Rejection.of(f, f.option or f"tensor parallel {args.tp}") for f in failures]
                           or [Rejection(option="plan", code="", message=plan.verdict)])
    return run_tp_smoke(model, p, timeout=args.timeout)


def cmd_smoke(args: argparse.Namespace) -> int:
    if args.runtime == "onnxruntime":
        from advisor.render.onnx import onnx_text

        onnx = run_onnx_smoke_command(args)
        write(args, onnx_text(onnx) if args.format == "text" else render(onnx, OutputFormat.JSON))
        return onnx.exit_code
    report = run_smoke_command(args)
    emit(args, report)
    return 0 if report.ok else 1


def run_onnx_smoke_command(args: Any) -> OnnxSmokeReport:
    """`advisor smoke MODEL --runtime onnxruntime`: the options that choose PyTorch configurations do not apply."""
    from advisor.errors import UsageError
    from advisor.model.resolve import resolve_model
    from advisor.prove.onnx import run_onnx_smoke

    given = [f"--{n}" for n in ("config", "attn", "dtype", "quantize", "all", "tp") if getattr(args, n, None)]
    if given:
        raise UsageError(f"{', '.join(given)} choose PyTorch configurations; drop them with --runtime onnxruntime")
    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code,
                          cache=not args.no_cache)
    return run_onnx_smoke(model, timeout=args.timeout)
