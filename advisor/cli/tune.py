"""`advisor tune`: time every viable candidate on this GPU and store the ranking."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from advisor.cli.output import emit
from advisor.errors import UsageError

if TYPE_CHECKING:
    from advisor.prove.tune import TuneReport

__all__ = ["cmd_tune", "run_tune_command"]


def cmd_tune(args: argparse.Namespace) -> int:
    report = run_tune_command(args)
    emit(args, report)
    return 0 if report.ok else 1


def run_tune_command(args: argparse.Namespace) -> TuneReport:
    """The CLI's `tune`: this machine, the model's config (or checkpoint), the budget."""
    from advisor.model.resolve import resolve_model
    from advisor.probe.target import TargetSpec, resolve_target
    from advisor.prove.tune import model_config_dict, run_tune

    started = time.perf_counter()  # issue 27: the budget holds the whole command, the model's resolution included
    model = resolve_model(args.model, allow_download=args.allow_download, trust_remote_code=args.trust_remote_code,
                          cache=not args.no_cache)
    if args.checkpoint and not model.has_weights:
        raise UsageError(f"{model.name} has no weights here: drop --checkpoint to time random weights")
    if model.trust_remote_code and not args.checkpoint:
        raise UsageError("random weights are built from transformers' own classes only; "
                         "use --checkpoint for a model with custom code")
    config = None if args.checkpoint else model_config_dict(model, args.model)
    env = resolve_target(TargetSpec(kernel_runs=False, cache=not args.no_cache))  # tune runs the kernels itself
    if not env.gpu_list:  # issue 31: CPU rows were recorded that recommend never reads (measurements are per GPU)
        raise UsageError("tune measures a GPU and this machine has none; on the CPU recommend keeps its static "
                         "order (float32 is fastest on most CPUs): time the options here with "
                         "`advisor bench MODEL --cpu`")
    return run_tune(model, env, config, workload=args.workload, budget=args.budget_seconds, started=started,
                    record=not args.no_measurements, simulate=args.simulate, cache=not args.no_cache, say=_say)


def _say(line: str) -> None:
    """Issue 27: the budget's one line goes out before any child starts, not with the report at the end."""
    sys.stderr.write(f"advisor: {line}\n")
    sys.stderr.flush()
