"""Run one worker module in a child process: a crash, hang, OOM or CUDA error becomes a result, never ours.

Used by the smoke test and the benchmark. The child reads a JSON request on stdin and prints one JSON line
with an `ok` key; it runs in its own process group so a timeout also kills whatever it started, and its
device memory is released when it exits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.isolation.lifeline import PARENT_ENV
from advisor.isolation.prestart import kill_group, worker_env

__all__ = ["KILL_WAIT_SECONDS", "run_child", "spawn_detached", "Trial"]

KILL_WAIT_SECONDS = 10.0  # after a timeout's SIGKILL, the most we wait for the child's pipes to close


class Trial(BaseModel):
    """What every configuration run in a child reports, whatever it measured besides."""

    model_config = ConfigDict(extra="forbid")

    label: str
    from_pretrained: dict[str, Any]
    ok: bool
    error: str | None = None
    load_seconds: float | None = None

_SIGNALS = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating-point exception",
    signal.SIGKILL: "killed, most likely by the kernel's out-of-memory killer",
}


def _last_line(stderr: bytes) -> str:
    """The child's last words on stderr, progress bars left out: often the reason for a crash."""
    text = stderr.decode("utf-8", "replace").replace("\r", "\n")
    lines = [line.strip() for line in text.splitlines() if line.strip() and "%|" not in line]
    line = lines[-1] if lines else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _signal_text(code: int) -> str:
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"crashed with signal {-code}"
    return f"crashed with signal {sig.value} ({sig.name}, {_SIGNALS.get(sig, 'signal')})"


def run_child(module: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker; whatever happens to it comes back as a result dict with `ok` and `error`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=worker_env(),
        start_new_session=True,  # its own process group: a timeout kills whatever it started too
    )
    try:
        out, err = proc.communicate(json.dumps(request).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, reap=False)
        try:
            proc.communicate(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:  # a grandchild that left the group still holds the pipes
            pass
        proc.wait()
        return {"ok": False, "error": f"timed out after {timeout:g} s"}
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP (advisor/isolation/interrupts.py): the child's whole group goes with us
        kill_group(proc, reap=False)
        proc.wait()
        raise
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(result, dict) and "ok" in result:
                return result
    last = _last_line(err)
    if proc.returncode < 0:
        error = _signal_text(proc.returncode)
    else:
        error = f"exited with status {proc.returncode} without a result"
    if "out of memory" in last.lower():
        error = f"out of memory ({error})"
    return {"ok": False, "error": f"{error}; last output: {last}" if last else error}


def spawn_detached(module: str, request: dict[str, Any]) -> bool:
    """Start a worker that outlives this process: its own session, no lifeline, its output discarded, the request
    on stdin; work that may finish after the command has answered (advisor.estimate.fit_worker). False where it
    could not start."""
    env = worker_env()
    env.pop(PARENT_ENV, None)
    try:
        proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
    except OSError:
        return False
    return True
