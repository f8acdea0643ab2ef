"""Issue 25, "Data loss and writes outside the target" and "Caches trusted without checks".

The cache folder (`ADVISOR_CACHE_DIR`) is a trusted path with untrusted content: a CI cache restored from a pull
request, or a folder another user can write. Each attack plants real files (symlinks to files and folders outside
the cache, FIFOs, /dev/zero, a SQLite database of another program, absurd but well-formed entries and rows) and
runs the real CLI or the store; nothing outside the cache may change, nothing the advisor did not create may be
deleted, and no absurd value may reach a plan. A full disk is a real one: a child process under RLIMIT_FSIZE
(writes past it fail with EFBIG, SIGXFSZ ignored), as a full or quota-limited disk fails them with ENOSPC/EDQUOT.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.api import target_environment
from advisor.io import analysis_cache
from advisor.knowledge.measurements import (
    STORE_NAME,
    Measurement,
    MeasurementKey,
    MeasurementStore,
    versions_of,
)
from advisor.model.resolve import resolve_model
from advisor.model.spec import shape_signature

ROOT = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/Llama-2-7b-hf"
GPU = ("--gpu", "H100-80GB")
SDPA, EAGER = "sdpa / bfloat16 / 1 GPU", "eager / bfloat16 / 1 GPU"
TF = "5.24.0"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(folder))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    return folder


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder` with its bytes and modification time (what "nothing written" means)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _rows(values: dict[str, float], **changes: Any) -> list[Measurement]:
    versions = versions_of(target_environment(gpu="H100-80GB"))
    model = resolve_model(MODEL)
    return [Measurement(key=MeasurementKey(**versions.model_dump(), model_type=model.model_type,
                                           shape=shape_signature(model), workload="prefill", candidate=label),
                        metric="prefill_tokens_per_second", value=value, spread=0.01, measured_at="2026-11-20",
                        run="test-run", **changes)
            for label, value in values.items()]


def _other_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (name TEXT)")
        conn.execute("INSERT INTO accounts VALUES ('alice')")
    conn.close()


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error: ") and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- data loss, writes outside


def test_a_cache_path_that_is_a_file_is_refused_and_kept(cli: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes")
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(precious))
    for argv in (("recommend", MODEL, "--cpu"), ("check", MODEL, *GPU), ("doctor", "--cpu")):
        code, out, err = cli(*argv)
        assert code == 2 and out == ""
        assert "is not a folder" in _one_error(err) and "--no-cache" in err
        assert precious.is_file() and precious.read_text() == "my notes"
    code, out, err = cli("recommend", MODEL, "--cpu", "--no-cache")  # the way out the message names
    assert code == 0, err
    assert precious.read_text() == "my notes"


@pytest.mark.parametrize("target", ["empty-file", "other-database"])
def test_a_symlinked_store_is_never_written_through(cli: Any, cache: Path, tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside" / "target.db"
    outside.parent.mkdir()
    if target == "empty-file":
        outside.write_bytes(b"")
    else:
        _other_database(outside)
    cache.mkdir()
    (cache / STORE_NAME).symlink_to(outside)
    before = _tree(outside.parent)
    code, out, err = cli("recommend", MODEL, *GPU, "--format", "json")  # reads the store
    assert code == 0, err
    notes = " ".join(json.loads(out)["ranking"]["notes"])
    assert "symbolic link" in notes
    store = MeasurementStore()
    assert store.record(_rows({SDPA: 100.0})) == 0 and "symbolic link" in " ".join(store.notes)  # tune's write
    assert _tree(outside.parent) == before  # not one byte, and no -wal/-shm beside it
    assert (cache / STORE_NAME).is_symlink()  # and the link itself left as it was


@pytest.mark.parametrize("side", ["-wal", "-shm", "-journal"])
def test_a_symlink_beside_the_store_is_never_followed(cli: Any, cache: Path, tmp_path: Path, side: str) -> None:
    assert MeasurementStore().record(_rows({SDPA: 100.0, EAGER: 200.0})) == 2
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 100)
    Path(str(cache / STORE_NAME) + side).symlink_to(outside)
    before = outside.read_bytes(), outside.stat().st_mtime_ns
    code, out, err = cli("recommend", MODEL, *GPU, "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["chosen"]["label"] == SDPA and "symbolic link" in " ".join(plan["ranking"]["notes"])
    assert MeasurementStore().record(_rows({SDPA: 1.0})) == 0
    assert (outside.read_bytes(), outside.stat().st_mtime_ns) == before


def test_a_read_only_recommend_writes_nothing_into_the_store(cli: Any, cache: Path) -> None:
    assert MeasurementStore().record(_rows({SDPA: 100.0, EAGER: 101.0})) == 2
    before = _tree(cache)
    code, _, err = cli("recommend", MODEL, *GPU, "--no-cache")
    assert code == 0, err
    after = _tree(cache)
    assert after[STORE_NAME] == before[STORE_NAME]  # the database itself: not a byte, not a touch
    assert set(after) - set(before) <= {STORE_NAME + "-wal", STORE_NAME + "-shm"}  # SQLite's own reader files
    assert after.get(STORE_NAME + "-wal", (b"", 0))[0] == b""  # and no write went into the journal


def test_an_empty_store_file_is_read_not_initialised(cli: Any, cache: Path) -> None:
    cache.mkdir()
    (cache / STORE_NAME).write_bytes(b"")
    code, _, err = cli("recommend", MODEL, *GPU, "--no-cache")
    assert code == 0, err
    assert (cache / STORE_NAME).read_bytes() == b""  # no journal header, no table made by a lookup


@pytest.mark.parametrize("link", ["v1", "v1/param-count"])
def test_a_symlinked_folder_inside_the_cache_is_never_written_through(cli: Any, cache: Path, tmp_path: Path,
                                                                      link: str) -> None:
    config = tmp_path / "model"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 96, "intermediate_size": 160,
        "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 1234,
        "max_position_embeddings": 256}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (cache / link).parent.mkdir(parents=True, exist_ok=True)
    (cache / link).symlink_to(outside, target_is_directory=True)
    for _ in range(2):
        code, _, err = cli("recommend", str(config), "--cpu", "--simulate")
        assert code == 0, err
    assert list(outside.rglob("*")) == []
    assert (cache / link).is_symlink()


def test_a_folder_the_advisor_did_not_create_gets_nothing_written(cli: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("\\documentclass{article}")
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(home))
    code, _, err = cli("recommend", MODEL, "--cpu", "--simulate")
    assert code == 0, err
    store = MeasurementStore()
    assert store.record(_rows({SDPA: 1.0})) == 0 and "did not create" in store.notes[0]
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


# ----------------------------------------------------------------------------- entries are input


def _entry(kind: str, content: Any) -> Path:
    """The file `put` just wrote for this key (the only one of its kind in a fresh cache)."""
    (path,) = (analysis_cache.cache_dir() / "v1" / kind).glob("*.json")
    return path


_GET_AND_PUT = """
import resource, signal, sys
sys.path.insert(0, sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))
signal.alarm(20)
from advisor.io import analysis_cache
print(analysis_cache.get("param-count", {"n": 1}, transformers="5.24.0"))
analysis_cache.put("param-count", {"n": 1}, [10, 8], transformers="5.24.0")
"""


@pytest.mark.parametrize("planted", ["fifo", "dev-zero", "symlink-to-file", "oversized"])
def test_an_entry_that_is_not_a_small_regular_file_is_a_miss(cache: Path, tmp_path: Path, planted: str) -> None:
    analysis_cache.put("param-count", {"n": 1}, [10, 8], transformers=TF)
    entry = _entry("param-count", {"n": 1})
    assert entry.is_file()
    secret = tmp_path / "secret.json"
    secret.write_text(entry.read_text())  # a valid entry outside: still not to be read through a link
    entry.unlink()
    if planted == "fifo":
        os.mkfifo(entry)
    elif planted == "dev-zero":
        entry.symlink_to("/dev/zero")
    elif planted == "symlink-to-file":
        entry.symlink_to(secret)
    else:
        entry.write_text(json.dumps({"key": json.loads(secret.read_text())["key"], "value": [10, 8],
                                     "pad": "x" * (2 << 20)}))
    # In a child with 1 GiB of address space and a timeout: a regression fails the test, not the machine.
    done = subprocess.run([sys.executable, "-c", _GET_AND_PUT, str(ROOT)], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)})
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr[-2000:]
    assert os.path.lexists(entry)
    if planted != "oversized":  # not the advisor's: never replaced, whatever it is
        assert not entry.is_file() or entry.is_symlink()
    assert json.loads(secret.read_text())["value"] == [10, 8]


ABSURD = {
    "param-count-negative": ("param-count", [-7_000_000_000, -1, None]),
    "param-count-huge": ("param-count", [10**30, 1, None]),
    "param-count-float": ("param-count", [1e300, 1.5, None]),
    "attention-not-bool": ("attention-support", {"sdpa": "yes"}),
    "memory-negative": ("memory-sim", {"weights_bytes": -1, "peak_bytes": -(1 << 40)}),
    "control-characters": ("torch-probe", {"version": "2.5\x1b]0;x\x07"}),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_a_well_formed_but_absurd_entry_is_a_miss(cache: Path, case: str) -> None:
    kind, value = ABSURD[case]
    analysis_cache.put(kind, {"case": case}, "placeholder", transformers=TF)
    entry = _entry(kind, {"case": case})
    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({"key": data["key"], "value": value}))  # as a hostile cache would hold it
    assert analysis_cache.get(kind, {"case": case}, transformers=TF) is None


def test_a_negative_parameter_count_in_the_cache_never_reaches_a_plan(cli: Any, cache: Path, tmp_path: Path) -> None:
    config = tmp_path / "model"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 96, "intermediate_size": 160,
        "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 1234,
        "max_position_embeddings": 256}))
    code, out, err = cli("recommend", str(config), "--gpu", "A100-80GB", "--format", "json")  # no live RAM figure
    assert code == 0, err
    fresh = json.loads(out)
    entries = list((cache / "v1" / "param-count").glob("*.json"))
    assert len(entries) == 1
    data = json.loads(entries[0].read_text())
    entries[0].write_text(json.dumps({"key": data["key"], "value": [-123456789, -1, None]}))
    code, out, err = cli("recommend", str(config), "--gpu", "A100-80GB", "--format", "json")
    assert code == 0, err
    again = json.loads(out)
    assert again["model"] == fresh["model"] and again["memory"] == fresh["memory"]
    assert all(v >= 0 for v in again["memory"].values() if isinstance(v, int))


# ----------------------------------------------------------------------------- the measurement store


def _plant_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows written straight into SQLite, as a hostile store holds them (no bounds on the way in)."""
    with sqlite3.connect(path) as conn:
        for row in rows:
            conn.execute(f"INSERT OR REPLACE INTO measurements ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
    conn.close()


def _row(label: str, value: float, **changes: Any) -> dict[str, Any]:
    (m,) = _rows({label: 1.0})
    return {**m.key.model_dump(), "metric": m.metric, "value": value, "spread": 0.01, "measured_at": m.measured_at,
            "run": m.run, "layers": None, **changes}


@pytest.mark.parametrize("value", [float("inf"), 1e300, -5.0, 5e-324], ids=["inf", "huge", "negative", "tiny"])
def test_an_absurd_measurement_changes_nothing(cli: Any, cache: Path, value: float) -> None:
    assert MeasurementStore().record(_rows({SDPA: 100.0})) == 1
    _plant_rows(cache / STORE_NAME, [_row(EAGER, value)])
    code, out, err = cli("recommend", MODEL, *GPU, "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["chosen"]["label"] == SDPA  # the static choice: the absurd row is not evidence
    assert "out of bounds" in " ".join(plan["ranking"]["notes"])
    code, out, err = cli("recommend", MODEL, *GPU)
    assert code == 0 and not re.search(r"(inf|nan|e\+\d+)x\b", out), out


def test_a_stored_string_cannot_reach_the_terminal_or_the_runner(cli: Any, cache: Path) -> None:
    assert MeasurementStore().record(_rows({SDPA: 100.0})) == 1
    _plant_rows(cache / STORE_NAME, [_row(EAGER, 200.0, run="r\n::error title=x::pwned\x1b]0;t\x07",
                                          measured_at="2026-11-20\n::add-mask::x")])
    code, out, err = cli("recommend", MODEL, *GPU)
    assert code == 0, err
    assert not any(line.lstrip().startswith("::") for line in out.split("\n"))
    assert "\x1b" not in out and "\x07" not in out


_FULL_DISK = """
import json, resource, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from advisor.knowledge.measurements import Measurement, MeasurementKey, MeasurementStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
rows = [Measurement(key=MeasurementKey(gpu="G", compute_capability="9.0", driver="d", torch="t", transformers="x",
                                       attention_kernels="k", model_type="llama", shape="s" * 200, workload="prefill",
                                       candidate=f"big-{i}-" + "c" * 200),
                    metric="m", value=1.0, measured_at="2026-11-20", run="r" * 200) for i in range(3000)]
store = MeasurementStore(Path(sys.argv[1]))
print(json.dumps({"recorded": store.record(rows), "notes": store.notes}))
"""


@pytest.mark.parametrize("limit_kib", [20, 96], ids=["shm-creation-fails", "wal-write-fails"])
def test_a_full_disk_during_a_write_keeps_the_store(tmp_path: Path, limit_kib: int) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    path = folder / STORE_NAME
    store = MeasurementStore(path)
    rows = [Measurement(key=MeasurementKey(gpu="G", compute_capability="9.0", driver="d", torch="t", transformers="x",
                                           attention_kernels="k", model_type="llama", shape="s", workload="prefill",
                                           candidate=f"c{i}"), metric="m", value=float(i + 1), measured_at="2026-11-20",
                        run="r") for i in range(20)]
    assert store.record(rows) == 20
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size < limit_kib * 1024
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path), str(limit_kib * 1024), str(ROOT)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["recorded"] == 0
    notes = " ".join(result["notes"])
    assert "kept" in notes and "corrupt" not in notes, notes
    assert sorted(p.name for p in folder.iterdir() if "corrupt" in p.name) == []  # nothing moved aside
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM measurements").fetchone() == (20,)
    conn.close()
    del digest
