"""`advisor probe`: snapshot this machine (or a saved or named one)."""

from __future__ import annotations

import argparse

from advisor import api
from advisor.cli.output import emit, target_args

__all__ = ["cmd_probe"]


def cmd_probe(args: argparse.Namespace) -> int:
    env = api.target_environment(
        import_checks=not args.no_import_check, kernel_runs=not args.no_kernel_runs,
        cache=not getattr(args, "no_cache", False), **target_args(args)
    )
    from advisor.io.write_output import format_for_output

    args.format = format_for_output(args.format, args.output, ("json", "text"), "text")
    emit(args, env)
    return 0
