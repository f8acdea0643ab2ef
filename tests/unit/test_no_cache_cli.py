"""`--no-cache` (issue 26): the real CLI neither writes into `ADVISOR_CACHE_DIR` nor reads a pre-filled one.

The poisoned entries are valid for their kind (they pass `cache_entries`' bounds), so a read would show: each test
first proves the poison reaches the output when the cache is on, then that `--no-cache` never sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from advisor.io import analysis_cache

ROOT = Path(__file__).resolve().parents[2]
MARK = "9.8.7"  # an impossible torch release, and the poisoned import error
OFF = "<ADVISOR_NO_CACHE=1>"  # `probe` has no --no-cache flag: its switch is the environment's


def _advisor(cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh interpreter; OFF in argv means `ADVISOR_NO_CACHE=1` instead of a flag."""
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache), "ADVISOR_FIT_INLINE": "1"}  # no write after it
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
    _neither_writes_nor_reads(tmp_path, argv, off, _poison, MARK)


def _neither_writes_nor_reads(tmp_path: Path, argv: tuple[str, ...], off: str, poison: Callable[[Path], int],
                              mark: str) -> None:
    empty = tmp_path / "empty"
    clean = _advisor(empty, *argv, off)
    assert clean.returncode in (0, 1), clean.stderr
    assert not empty.exists() or _files(empty) == {}, "--no-cache wrote into the cache folder"

    filled = tmp_path / "filled"
    assert _advisor(filled, *argv).returncode in (0, 1)
    assert poison(filled) > 0, "the command kept nothing to poison: the test would prove nothing"
    before = _files(filled)
    assert mark in _advisor(filled, *argv).stdout, "the poison does not reach the output with the cache on"

    bypassed = _advisor(filled, *argv, off)
    assert bypassed.returncode == clean.returncode, bypassed.stderr
    assert mark not in bypassed.stdout and mark not in clean.stdout
    assert _files(filled) == before, "--no-cache changed the pre-filled cache"


COUNT = 987654321  # a poisoned parameter count (and weights size): within the entry bounds, never a real answer
LAYER = "PoisonedLayer"
# a config no table ships: its parameters are counted on the meta device and its kernel layers built there, and
# both answers are kept in the cache (the model room's paths that read a context variable before issue 26)
CONFIG = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 256,
          "intermediate_size": 704, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 3,
          "vocab_size": 1000, "max_position_embeddings": 2048, "torch_dtype": "bfloat16"}


def _poison_model(folder: Path) -> int:
    """Rewrite the model room's entries (counts, kernel layers) and the memory simulation with COUNT / LAYER."""
    poisoned = 0
    for path in folder.rglob("*.json"):
        entry = json.loads(path.read_text())
        kind = entry["key"]["kind"]
        if kind == "param-count":
            entry["value"] = [COUNT, COUNT, None]
        elif kind == "kernel-layers":
            entry["value"] = [LAYER]
        elif kind == "memory-sim":
            entry["value"]["weights_bytes"] = COUNT
        else:
            continue
        path.write_text(json.dumps(entry))
        poisoned += 1
    return poisoned


@pytest.mark.parametrize(("argv", "mark"), [
    (("recommend", "MODEL", "--gpu", "H100", "--format", "json"), LAYER),
    (("recommend", "MODEL", "--gpu", "H100", "--format", "json"), str(COUNT)),
    (("check", "MODEL", "--gpu", "H100", "--format", "json"), str(COUNT)),
    (("doctor", "MODEL", "--gpu", "H100", "--format", "json"), LAYER),
], ids=["recommend-layers", "recommend-count", "check", "doctor"])
def test_no_cache_reaches_the_model_room(tmp_path: Path, argv: tuple[str, ...], mark: str) -> None:
    """Issue 26: the counts and kernel layers of a new model honour --no-cache as a parameter, not a context."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    argv = tuple(str(model) if a == "MODEL" else a for a in argv)
    _neither_writes_nor_reads(tmp_path, argv, "--no-cache", _poison_model, mark)


def test_tune_no_cache_writes_nothing(tmp_path: Path) -> None:
    """tune resolves the model before it refuses a machine without a GPU: with the cache on that keeps its count,
    with --no-cache nothing is written (the full run needs a GPU)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    on, off = tmp_path / "on", tmp_path / "off"
    assert _advisor(on, "tune", str(model)).returncode == 2
    assert any(json.loads(p.read_text())["key"]["kind"] == "param-count" for p in on.rglob("*.json"))
    assert _advisor(off, "tune", str(model), "--no-cache").returncode == 2
    assert not off.exists() or _files(off) == {}


def test_knowledge_loaders_take_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed release's facts (read when it is newer than the tables) honour `cache=False`, and so does
    every loader built on them (`load_release_constraints`, `load_knowledge`)."""
    from advisor.knowledge.installed import _cached, derived_facts, installed

    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    inst = installed()
    assert inst is not None
    poison = {"POISONED": {"runs": []}}
    assert _cached("facts", inst, lambda: poison, True) == poison  # stored under the real key and stamp
    assert derived_facts(inst) == poison, "the poison is not read with the cache on: the test would prove nothing"
    fresh = derived_facts(inst, cache=False)
    assert "POISONED" not in fresh and "use_kernels_default" in fresh
    assert len(_files(tmp_path)) == 1, "cache=False wrote an entry"
