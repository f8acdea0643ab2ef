"""What every command shares: the target arguments, writing the report (stdout or -o, colour only on a
terminal), and keeping the libraries' own log lines off stderr without -v."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from advisor import env as envvars
from advisor.io.environ import scoped_environ
from advisor.io.write_output import check_output, is_stdout, write_output
from advisor.render import OutputFormat, render

__all__ = ["emit", "library_output", "preflight", "progress_lines", "target_args", "write"]


# transformers' and huggingface_hub's switches for their own stderr output, set while a command runs without -v
_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
# standard-library loggers of libraries with no verbosity switch of their own: the `kernels` package warns
# "Skipping publisher trust check for '<repo>' because Hugging Face Hub is in offline mode." each time importing a
# model module (gpt_neo, for one) asks it for the flash-attention fallback while the CLI is offline (issue 26)
_QUIET_LOGGERS = ("kernels",)


@contextlib.contextmanager
def library_output(verbose: bool) -> Iterator[None]:
    """Without -v, no line of transformers', kernels' or torch's own logging or warnings reaches stderr (the
    advisor's output is the report); children inherit the environment switches. Restored afterwards (the CLI also
    runs in-process, from tests and notebooks)."""
    if verbose:
        yield
        return
    tf_logging = _transformers_logging()
    level = tf_logging.get_verbosity() if tf_logging is not None else None
    if tf_logging is not None:
        tf_logging.set_verbosity_error()
    loggers = {logging.getLogger(name): logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with scoped_environ(_QUIET_ENV), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, was in loggers.items():
            logger.setLevel(was)
        tf_logging = _transformers_logging()
        if tf_logging is not None:  # imported during the command with the quiet default: put the default back
            tf_logging.set_verbosity(level if level is not None else logging.WARNING)


def _transformers_logging() -> Any:
    """transformers' logging module where transformers is already imported (never imports it)."""
    module = sys.modules.get("transformers.utils.logging")
    return module if module is not None and hasattr(module, "set_verbosity") else None


@contextlib.contextmanager
def progress_lines() -> Iterator[None]:
    """The library's progress messages (logger "advisor", INFO: a first read of a new transformers release) as
    `advisor: ...` lines on stderr, where a person watches it (a TTY); in a pipe or CI log stderr keeps only
    the one-line errors."""
    if not sys.stderr.isatty():
        yield
        return
    logger = logging.getLogger("advisor")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("advisor: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def target_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "env": args.env,
        "gpu": args.gpu,
        "cpu": args.cpu,
        "assume": args.assume,
        "without": args.without,
    }


def emit(args: argparse.Namespace, obj: Any) -> None:
    fmt = OutputFormat(args.format)
    color = is_stdout(args.output) and sys.stdout.isatty() and envvars.read(envvars.NO_COLOR) is None and fmt is OutputFormat.TEXT
    write(args, render(obj, fmt, color=color, verbose=getattr(args, "verbose", False)))


def write(args: argparse.Namespace, text: str) -> None:
    if args.output is not None:
        write_output(args.output, text, force=args.force)
    else:
        sys.stdout.write(text)


def preflight(args: argparse.Namespace) -> None:
    """Refuse an unwritable -o before spending seconds on probing."""
    if getattr(args, "output", None) is not None:
        check_output(args.output, force=args.force)
