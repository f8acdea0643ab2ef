"""`advisor check`: one configuration on one target, or, with --manifest and the CI formats, a CheckSuite of
every model x target pair."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from advisor import api
from advisor import env as envvars
from advisor.cli.output import emit, target_args, write
from advisor.errors import UsageError
from advisor.render.escape import encodable

if TYPE_CHECKING:
    from advisor.fleet.manifest import CheckSuite

__all__ = ["check_suite", "cmd_check"]

_SINGLE_ONLY = ("config", "attn", "dtype", "quantize", "env", "cpu", "assume", "without", "tp")


def check_suite(args: argparse.Namespace) -> CheckSuite:
    """The manifest's pairs, or the one configuration given on the command line as a one-pair suite."""
    from advisor.fleet.manifest import load_manifest, run_manifest, suite_from_check

    if args.manifest is not None:
        given = [name for name in _SINGLE_ONLY if getattr(args, name, None)] + (["gpu"] if args.gpu else [])
        if args.model is not None or given:
            extra = ", ".join(["MODEL"] * (args.model is not None) + [f"--{g}" for g in given])
            raise UsageError(f"--manifest lists the models and targets itself; drop {extra} or drop --manifest")
        return run_manifest(load_manifest(args.manifest), trust_remote_code=args.trust_remote_code,
                            simulate=args.simulate)
    if args.model is None:
        raise UsageError("give MODEL, or --manifest FILE with models and targets")

    result = api.check(args.model, config=args.config, attn=args.attn, dtype=args.dtype, quantize=args.quantize,
                       batch=args.batch, seq_len=args.seq_len, allow_download=args.allow_download,
                       trust_remote_code=args.trust_remote_code, env=args.env, gpu=args.gpu, cpu=args.cpu,
                       assume=args.assume, without=args.without, tp=args.tp, simulate=args.simulate,
                       cache=not args.no_cache)
    return suite_from_check(args.model, result, batch=args.batch, seq_len=args.seq_len)


def cmd_check(args: argparse.Namespace) -> int:
    if args.manifest is not None or args.format in ("markdown", "junit", "github"):
        return _check_suite(args)
    if args.model is None:
        raise UsageError("give MODEL, or --manifest FILE with models and targets")
    result = api.check(args.model, config=args.config, attn=args.attn, dtype=args.dtype, quantize=args.quantize,
                       batch=args.batch, seq_len=args.seq_len, allow_download=args.allow_download,
                       trust_remote_code=args.trust_remote_code, measurements=not args.no_measurements,
                       tp=args.tp, simulate=args.simulate, cache=not args.no_cache, **target_args(args))
    emit(args, result)
    return 0 if result.ok else 1


def _check_suite(args: argparse.Namespace) -> int:
    """Manifest and CI formats; with --format github the table also goes to $GITHUB_STEP_SUMMARY."""
    from advisor.render.suite import render_suite

    suite = check_suite(args)
    write(args, render_suite(suite, args.format))
    summary = envvars.read(envvars.GITHUB_STEP_SUMMARY)
    if args.format == "github" and summary:
        from advisor.render.github import step_summary

        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(encodable(step_summary(suite)))
    return 0 if suite.ok else 1
