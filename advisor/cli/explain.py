"""`advisor explain CODE`: a rule's what, why and fix."""

from __future__ import annotations

import argparse
import sys

__all__ = ["cmd_explain"]


def cmd_explain(args: argparse.Namespace) -> int:
    from advisor.rules.explain import explain

    sys.stdout.write(explain(args.code))
    return 0
