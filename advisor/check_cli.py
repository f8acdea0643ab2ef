"""`advisor check --manifest` and the CI formats: turn the arguments into one CheckSuite."""

from __future__ import annotations

import argparse

from advisor.errors import UsageError
from advisor.fleet.manifest import CheckSuite, load_manifest, run_manifest, suite_from_check

__all__ = ["check_suite"]

_SINGLE_ONLY = ("config", "attn", "dtype", "quantize", "env", "cpu", "assume", "without")


def check_suite(args: argparse.Namespace) -> CheckSuite:
    """The manifest's pairs, or the one configuration given on the command line as a one-pair suite."""
    if args.manifest is not None:
        given = [name for name in _SINGLE_ONLY if getattr(args, name, None)] + (["gpu"] if args.gpu else [])
        if args.model is not None or given:
            extra = ", ".join(["MODEL"] * (args.model is not None) + [f"--{g}" for g in given])
            raise UsageError(f"--manifest lists the models and targets itself; drop {extra} or drop --manifest")
        return run_manifest(load_manifest(args.manifest), trust_remote_code=args.trust_remote_code)
    if args.model is None:
        raise UsageError("give MODEL, or --manifest FILE with models and targets")
    from advisor import api

    result = api.check(args.model, config=args.config, attn=args.attn, dtype=args.dtype, quantize=args.quantize,
                       batch=args.batch, seq_len=args.seq_len, allow_download=args.allow_download,
                       trust_remote_code=args.trust_remote_code, env=args.env, gpu=args.gpu, cpu=args.cpu,
                       assume=args.assume, without=args.without)
    return suite_from_check(args.model, result, batch=args.batch, seq_len=args.seq_len)
