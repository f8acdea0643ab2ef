"""The command line: argv in, text out, exit codes. `parser` builds the parser and turns a command's errors
into one line and an exit code; one module per command (`probe`, `doctor`, `recommend`, `check`, `matrix`,
`explain`, `smoke`, `bench`, `tune`) turns its arguments into library calls; `output` writes the report.

The only room that imports argparse. May import everything; nothing in the library imports it.
"""

from __future__ import annotations

from advisor.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
