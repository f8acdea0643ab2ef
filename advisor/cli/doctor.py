"""`advisor doctor`: a report on the machine and, with MODEL, how to load it."""

from __future__ import annotations

import argparse
import contextlib

from advisor import api
from advisor.cli.output import emit, target_args
from advisor.probe.deferral import prove_all

__all__ = ["cmd_doctor"]


def cmd_doctor(args: argparse.Namespace) -> int:
    with prove_all() if args.prove_all else contextlib.nullcontext():  # issue 27: also the proofs that compile
        report = api.doctor(args.model, smoke=args.smoke, allow_download=args.allow_download,
                            trust_remote_code=args.trust_remote_code, prefer=args.prefer,
                            measurements=not args.no_measurements, serving=args.workload, simulate=args.simulate,
                            cache=not args.no_cache, **target_args(args))
    emit(args, report)
    return 0 if report.ok else 1
