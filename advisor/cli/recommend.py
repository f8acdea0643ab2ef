"""`advisor recommend`: the from_pretrained configuration to use, and why not the others."""

from __future__ import annotations

import argparse
import sys

from advisor import api
from advisor.cli.output import emit, target_args
from advisor.render.escape import terminal_safe

__all__ = ["cmd_recommend"]


def cmd_recommend(args: argparse.Namespace) -> int:
    plan = api.recommend(args.model, dtype=args.dtype, quantize=args.quantize, batch=args.batch, seq_len=args.seq_len,
                         ignore=args.ignore, allow_download=args.allow_download,
                         trust_remote_code=args.trust_remote_code, prefer=args.prefer,
                         measurements=not args.no_measurements, tp=args.tp, serving=args.workload,
                         simulate=args.simulate, cache=not args.no_cache, **target_args(args))
    if args.format == "python" and not plan.ok:  # stdout (or -o) only ever receives Python
        sys.stderr.write(f"advisor: no Python to write: {terminal_safe(plan.verdict, keep_newlines=False)}\n")
        return 1
    emit(args, plan)
    return 0 if plan.ok else 1
