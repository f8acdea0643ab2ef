"""Fits the memory formulas a command queued (advisor.estimate.formula_store), after that command has answered:
a detached child at low priority, reading {"jobs": [...]} on stdin, writing only to the analysis cache."""

from __future__ import annotations

import json
import os
import sys
import warnings


def main() -> None:
    try:
        os.nice(10)  # behind whatever the user runs next
    except OSError:
        pass
    from advisor.estimate import formula_store

    jobs = json.loads(sys.stdin.read() or "{}").get("jobs", [])
    formula_store._PENDING[:] = [job for job in jobs if isinstance(job, dict)][: formula_store.MAX_PENDING]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        formula_store.fit_pending()


if __name__ == "__main__":
    main()
