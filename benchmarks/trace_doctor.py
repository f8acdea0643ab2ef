"""When `advisor doctor`'s children start and end and when it imports torch, as one JSON object (issue 27).

Usage: ADVISOR_CACHE_DIR=$(mktemp -d) python benchmarks/trace_doctor.py [ARGS] > trace.json   (an empty cache: a
first run; ARGS: another command line than `doctor --format json`)
It runs the CLI in this process with subprocess.Popen and the import of torch / transformers timed; what the
H100 runs of issue 27 printed is in docs/gpu/doctor-trace-h100/. The hooks wrap, never replace, what they time.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import runpy
import subprocess
import sys
import threading
import time
from typing import Any

T0 = time.perf_counter()
CHILDREN: list[list[Any]] = []  # ["start" | "end", seconds, command line(, thread)]
IMPORTS: dict[str, list[Any]] = {}  # name -> [start, end, thread]
TIMED = ("torch", "transformers")


def _since() -> float:
    return round(time.perf_counter() - T0, 3)


def _hook() -> None:
    started, waited, importer = subprocess.Popen.__init__, subprocess.Popen.wait, builtins.__import__

    def init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        at = _since()  # before the spawn, as the child's start
        started(self, args, *rest, **kwargs)
        self._traced = args if isinstance(args, str) else " ".join(map(str, args))[:160]  # type: ignore[attr-defined]
        CHILDREN.append(["start", at, self._traced, threading.current_thread().name])  # type: ignore[attr-defined]

    def wait(self: subprocess.Popen[Any], *rest: Any, **kwargs: Any) -> Any:
        # every child ends here: communicate() waits too, and the kernel batch's child is read line by line, then
        # waited for; a child waited for twice is recorded once
        code = waited(self, *rest, **kwargs)
        if not getattr(self, "_ended", False):
            self._ended = True  # type: ignore[attr-defined]
            CHILDREN.append(["end", _since(), getattr(self, "_traced", "?")])
        return code

    def imported(name: str, *rest: Any, **kwargs: Any) -> Any:
        first = name in TIMED and name not in sys.modules
        start = _since()
        module = importer(name, *rest, **kwargs)
        if first and name in sys.modules:
            IMPORTS[name] = [start, _since(), threading.current_thread().name]
        return module

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    subprocess.Popen.wait = wait  # type: ignore[method-assign]
    builtins.__import__ = imported


def main() -> None:
    _hook()
    sys.argv = ["advisor", *(sys.argv[1:] or ["doctor", "--format", "json"])]  # another command: its arguments
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.suppress(SystemExit):
        runpy.run_module("advisor", run_name="__main__")
    print(json.dumps({"total": _since(), "imports": IMPORTS, "children": CHILDREN}, indent=0))


if __name__ == "__main__":
    main()
