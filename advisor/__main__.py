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


def _imported_whole() -> object:
    """The CLI, imported with SIGINT held back: a Ctrl-C that lands inside a compiled extension's import (pydantic-core
    importing `datetime`'s C API) panicked with a traceback instead of raising KeyboardInterrupt. Held, it arrives
    when the import is done, where it is an ordinary KeyboardInterrupt."""
    import advisor

    block = getattr(signal, "pthread_sigmask", None)
    held = block(signal.SIG_BLOCK, {signal.SIGINT}) if block is not None else None
    try:
        from advisor.cli import main
    finally:
        if block is not None:
            before = advisor.SIGINT_MASK_BEFORE_CLI  # held since the package's first line under `python -m`
            block(signal.SIG_SETMASK, held if before is None else before)
    return main


def run() -> int:
    """The CLI's exit code; an interrupt at any point before the CLI handles it is `advisor: interrupted`, 130."""
    try:
        from advisor.io.analysis_cache import holds
        from advisor.isolation import prestart

        prestart.start_for(sys.argv[1:], holds)  # issue 27: torch imports in a worker while the CLI loads
        main = _imported_whole()
        code = main()  # type: ignore[operator]
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
