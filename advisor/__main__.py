"""`python -m advisor` and the `advisor` script: the CLI, with Ctrl-C at any moment one line and exit 130.

Issue 25: SIGINT in the first half second (while the CLI's modules were still importing, before its own handlers
were in place) printed a traceback. Here the import itself is inside the handler, and once the command is over,
SIGINT is ignored so that the clean-up at exit (the run folder's removal) is never cut short by a traceback.
"""

from __future__ import annotations

import signal
import sys


def _ignore_sigint() -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def run() -> int:
    """The CLI's exit code; an interrupt at any point before the CLI handles it is `advisor: interrupted`, 130."""
    try:
        from advisor.cli import main

        code = main()
        from advisor.estimate.formula_store import fit_later

        fit_later()  # issue 27: the memory formulas of what this command simulated, fitted after its answer
    except KeyboardInterrupt:
        _ignore_sigint()
        sys.stderr.write("advisor: interrupted\n")
        return 130
    _ignore_sigint()
    return code


if __name__ == "__main__":
    raise SystemExit(run())
