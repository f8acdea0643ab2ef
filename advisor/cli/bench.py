"""`advisor bench`: time every viable candidate here; mark the advisor's choice and the best."""

from __future__ import annotations

import argparse
import sys

from advisor import env as envvars
from advisor.cli.output import emit
from advisor.io.write_output import check_output, write_output

__all__ = ["cmd_bench"]


def cmd_bench(args: argparse.Namespace) -> int:
    from advisor.model.resolve import resolve_model
    from advisor.plan.options import PlanRequest
    from advisor.probe.target import TargetSpec, resolve_target
    from advisor.prove.bench import fitted_workload, run_bench

    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code,
                          cache=not args.no_cache)
    base = fitted_workload(args.workload, model.max_positions)  # --seq-len, when given, replaces the prompt below
    workload = base.model_copy(update={k: v for k, v in (("batch", args.batch), ("prompt", args.seq_len),
                                                         ("new_tokens", args.new_tokens)) if v is not None})
    if args.plot is not None:
        from advisor.render.plot import require_matplotlib

        require_matplotlib()  # before any work (issue 31: it failed after 25 s)
        check_output(args.plot, force=args.force)
    env = resolve_target(TargetSpec(cpu=args.cpu, cache=not args.no_cache))

    def progress(done: int, total: int, label: str) -> None:
        if sys.stderr.isatty() or envvars.read(envvars.PROGRESS):
            from advisor.prove.bench import progress_line

            sys.stderr.write(progress_line(done, total, label))
            sys.stderr.flush()

    request = PlanRequest(attn=args.attn, dtype=args.dtype or "auto", quantize=args.quantize or "auto",
                          simulate=args.simulate, cache=not args.no_cache)
    (report,) = run_bench(model, env, [workload], repeats=args.repeats, timeout=args.timeout, progress=progress,
                          request=request, control=args.control, rounds=args.rounds)
    if args.plot is not None:
        from advisor.render.plot import bench_plot

        write_output(args.plot, bench_plot(report), force=args.force)
    emit(args, report)
    return 0 if report.ok else 1
