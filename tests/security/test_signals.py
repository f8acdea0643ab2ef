"""Signals to `advisor smoke --all` leave no worker running and no temporary folder behind (issue 15).

Real processes: `python -m advisor smoke TINY --cpu --all` with its reference child held in a forced hang
(ADVISOR_SMOKE_FAULT=hang@reference, which fires before the worker imports anything heavy), then the parent gets
SIGINT, SIGTERM, SIGHUP or SIGKILL. Each run has its own TMPDIR, so leftovers are counted exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.errors import UsageError
from advisor.io import rundir
from advisor.prove.smoke_worker import FAULT_ENV

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker")

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Run:
    """One `advisor smoke --all` process with its own TMPDIR, started at once; `worker()` waits for its child."""

    def __init__(self, tiny_llama: Path, tmp: Path) -> None:
        self.tmp = tmp
        env = {**os.environ, "TMPDIR": str(tmp), FAULT_ENV: "hang@reference", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "advisor", "smoke", str(tiny_llama), "--cpu", "--all", "--timeout", "600"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.pid = 0

    def worker(self) -> int:
        """The pid of the (hanging) reference worker, once the advisor has started it."""
        def started() -> bool:
            found = [p for p in _children(self.proc.pid)
                     if b"advisor.prove.smoke_worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
            self.pid = found[0] if found else 0
            return bool(found) or self.proc.poll() is not None

        assert _wait_for(started, 300), "no worker started"
        assert self.proc.poll() is None, self.proc.communicate()
        return self.pid

    def kill(self) -> None:
        """Clean up whatever a failed assertion left: the advisor's own session and the worker's group."""
        for pid in {self.proc.pid, self.pid, *_children(self.proc.pid)} - {0}:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGKILL: -signal.SIGKILL}


@pytest.fixture(scope="module")
def runs(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Run]]:
    """One run per signal, all started together: each waits ~a torch import, so in parallel they wait once."""
    started = {sig: Run(tiny_llama, tmp_path_factory.mktemp(f"tmp_{sig.name}")) for sig in SIGNALS}
    try:
        yield started
    finally:
        for run in started.values():
            run.kill()


def _leftovers(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_kills_the_worker_removes_the_temp_folder_and_exits_128_plus_n(
    runs: dict[int, Run], sig: signal.Signals
) -> None:
    run = runs[sig]
    worker = run.worker()
    folder = next((run.tmp / f"advisor-{os.getuid()}").glob(f"run-{run.proc.pid}-*"))
    assert any(folder.glob("smoke-*")), "the smoke folder lives in the run folder"
    os.kill(run.proc.pid, sig)
    _, err = run.proc.communicate(timeout=60)
    assert run.proc.returncode == SIGNALS[sig], err
    assert err.decode().count("\n") == 1 and b"Traceback" not in err
    assert _wait_for(lambda: not _alive(worker), 10), "the worker outlived the advisor"
    assert [p.name for p in _leftovers(run.tmp)] == [f"advisor-{os.getuid()}"]  # the run folder is gone


@pytest.mark.slow
def test_sigkill_of_the_advisor_takes_the_worker_along_and_the_next_run_sweeps(
    runs: dict[int, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runs[signal.SIGKILL]
    worker = run.worker()
    (left,) = (run.tmp / f"advisor-{os.getuid()}").glob(f"run-{run.proc.pid}-*")
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(timeout=30)
    assert _wait_for(lambda: not _alive(worker), 10), "the worker outlived a SIGKILLed advisor"
    assert left.is_dir()  # SIGKILL cannot be caught: the next run cleans up
    monkeypatch.setenv("TMPDIR", str(run.tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(rundir, "_RUN", None)
    with rundir.temp_dir("next-"):
        assert not left.exists()


def test_the_sweep_removes_only_folders_of_dead_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    base = rundir.base_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone, mine, parent = base / f"run-{dead.pid}-a", base / f"run-{os.getpid()}-b", base / f"run-{os.getppid()}-c"
    for folder in (gone, mine, parent):
        folder.mkdir()
    assert rundir.sweep(base) == [gone]
    assert mine.is_dir() and parent.is_dir() and not gone.exists()


def test_a_run_folder_base_that_is_not_private_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / f"advisor-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="not a private folder"):
        rundir.base_dir()
