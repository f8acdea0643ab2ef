"""`--no-cache` (issue 26): the real CLI neither writes into `ADVISOR_CACHE_DIR` nor reads a pre-filled one.

The poisoned entries are valid for their kind (they pass `cache_entries`' bounds), so a read would show: each test
first proves the poison reaches the output when the cache is on, then that `--no-cache` never sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.io import analysis_cache

ROOT = Path(__file__).resolve().parents[2]
MARK = "9.8.7"  # an impossible torch release, and the poisoned import error
OFF = "<ADVISOR_NO_CACHE=1>"  # `probe` has no --no-cache flag: its switch is the environment's


def _advisor(cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh interpreter; OFF in argv means `ADVISOR_NO_CACHE=1` instead of a flag."""
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    if OFF in argv:
        argv = tuple(a for a in argv if a != OFF)
        env[analysis_cache.NO_CACHE_ENV] = "1"
    return subprocess.run([sys.executable, "-m", "advisor", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _poison(folder: Path) -> int:
    """Rewrite every torch-probe and import-check entry with a value that names MARK; how many were poisoned."""
    poisoned = 0
    for path in folder.rglob("*.json"):
        entry = json.loads(path.read_text())
        kind = entry["key"]["kind"]
        if kind == "torch-probe":
            entry["value"]["version"] = MARK
        elif kind == "import-check":
            entry["value"] = {"ok": False, "error": f"POISONED {MARK}", "details": {}}
        else:
            continue
        path.write_text(json.dumps(entry))
        poisoned += 1
    return poisoned


@pytest.mark.parametrize(("argv", "off"), [
    (("probe",), OFF),
    (("doctor", "meta-llama/Meta-Llama-3-8B"), "--no-cache"),
    (("recommend", "meta-llama/Meta-Llama-3-8B", "--format", "json"), "--no-cache"),
    (("recommend", "meta-llama/Meta-Llama-3-8B", "--format", "json"), OFF),
], ids=["probe-env", "doctor", "recommend", "recommend-env"])
def test_no_cache_neither_writes_nor_reads_the_cache(tmp_path: Path, argv: tuple[str, ...], off: str) -> None:
    empty = tmp_path / "empty"
    clean = _advisor(empty, *argv, off)
    assert clean.returncode in (0, 1), clean.stderr
    assert not empty.exists() or _files(empty) == {}, "--no-cache wrote into the cache folder"

    filled = tmp_path / "filled"
    assert _advisor(filled, *argv).returncode in (0, 1)
    assert _poison(filled) > 0, "the command kept nothing to poison: the test would prove nothing"
    before = _files(filled)
    assert MARK in _advisor(filled, *argv).stdout, "the poison does not reach the output with the cache on"

    bypassed = _advisor(filled, *argv, off)
    assert bypassed.returncode == clean.returncode, bypassed.stderr
    assert MARK not in bypassed.stdout and MARK not in clean.stdout
    assert _files(filled) == before, "--no-cache changed the pre-filled cache"
