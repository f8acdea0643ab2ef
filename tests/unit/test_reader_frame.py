"""Issue 26: the transformers readers (layers_worker, derive_worker) share one frame, advisor/isolation/reader.py:
stdout carries the JSON answer only, whatever the classes print while they import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, stdin: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *argv], input=stdin, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_printing_never_reaches_the_answer() -> None:
    code = ("import sys; from advisor.isolation.reader import serve\n"
            "sys.exit(serve(lambda p: print('noise from an import') or {'got': p}))")
    done = _child(code, '{"a": 1}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"got": {"a": 1}} and "noise from an import" in done.stderr


def test_both_readers_use_it() -> None:
    layers = _child("", "[]", "-m", "advisor.model.layers_worker")
    assert layers.returncode == 0 and set(json.loads(layers.stdout)) >= {"transformers", "mapping", "layers"}
    assert _child("", "{}", "-m", "advisor.knowledge.derive_worker", "no-such-part").returncode == 2
