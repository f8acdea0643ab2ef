"""Workers started on the command line's first line, before the CLI is imported (issue 27).

A first `doctor`'s critical path is `import torch` in a child: on an H100 the kernel child spent 2.7 of its 3.4 s
importing torch (docs/gpu/kernel-timeline-h100.json), and it was spawned only after the CLI had loaded (0.5 s in).
Started here, a worker imports torch while the CLI loads, then waits on stdin for its request. Whoever needs that
worker `claim`s it (or spawns a fresh one where none was started: the Python API); one nobody needs, because the
answer came from the analysis cache, is killed when that is known, and at exit at the latest.

Standard library only: advisor/__main__.py imports it before anything heavy.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from advisor import env as envvars

__all__ = ["claim", "discard", "kill_group", "spawn_worker", "start", "start_for", "worker_env"]

# the worker's file, not `-m`: it needs none of the advisor's imports; run_path adds no folder to sys.path
# (advisor/probe/kernels.py would shadow the `kernels` package)
WORKER = Path(__file__).resolve().parents[1] / "probe" / "kernel_worker.py"
RUN_FILE = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
TORCH, KERNELS = "torch", "kernels"  # the facts of the installed torch; the kernel proofs on GPU 0
_STARTED: dict[str, subprocess.Popen[bytes]] = {}
_COMMANDS = ("doctor", "probe")  # the commands that import torch on this machine (recommend and check do not)
_ELSEWHERE = ("--env", "--gpu", "-h", "--help")  # the target is a snapshot, or nothing runs


def worker_env() -> dict[str, str]:
    """This environment, plus the source tree on PYTHONPATH when the advisor runs from a checkout
    (never site-packages: ahead of the standard library it could shadow it)."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]  # advisor/isolation/prestart.py -> the folder holding advisor/
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no network; never hang on one
    env[envvars.PARENT_PID] = str(os.getpid())  # the child dies with us, even on SIGKILL (lifeline.py)
    return env


def spawn_worker() -> subprocess.Popen[bytes]:
    """advisor/probe/kernel_worker.py in its own process group (a timeout kills whatever it started too)."""
    return subprocess.Popen([sys.executable, "-c", RUN_FILE, str(WORKER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=worker_env(), start_new_session=True)


def _nvidia_device() -> bool:
    """An NVIDIA device node, and CUDA_VISIBLE_DEVICES does not hide every GPU: the kernel proofs may run."""
    visible = envvars.read(envvars.CUDA_VISIBLE_DEVICES)
    return os.path.exists("/dev/nvidiactl") and visible not in ("", "-1")


def start_for(argv: Sequence[str], cached: Callable[[str], bool] = lambda kind: False) -> None:
    """Start the workers this command line will ask for: the torch facts for `doctor` and `probe` on this machine,
    and the kernel proofs where an NVIDIA GPU may be, unless `cached(kind)` says the analysis cache probably holds
    the answer ("torch-probe", "kernel-runs"). Wrong guesses cost a child killed unclaimed, or an import here."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in _COMMANDS or any(a.split("=")[0] in _ELSEWHERE for a in argv):
        return
    fresh = "--no-cache" in argv
    names = [TORCH] if fresh or not cached("torch-probe") else []
    if words[0] == "doctor" and "--no-kernel-runs" not in argv and _nvidia_device() and (
            fresh or not cached("kernel-runs")):
        names.append(KERNELS)
    start(*names)


def start(*names: str) -> None:
    """A worker for each name, unless one is already waiting."""
    for name in names:
        if name in _STARTED:
            continue
        try:
            _STARTED[name] = spawn_worker()
        except OSError:  # no fork here: the probe spawns what it needs when it needs it
            return


def claim(name: str) -> subprocess.Popen[bytes] | None:
    """The worker started for `name`, still waiting for its request; None where none was (or it died)."""
    proc = _STARTED.pop(name, None)
    if proc is None or proc.poll() is None:
        return proc
    kill_group(proc)
    return None


def discard(*names: str) -> None:
    """Kill the unclaimed workers named (all of them with no name): their answers came from the cache."""
    for name in names or tuple(_STARTED):
        proc = _STARTED.pop(name, None)
        if proc is not None:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes], *, reap: bool = True) -> None:
    """SIGKILL the child's own process group (the child is its leader, so the group is still ours); `reap`: wait
    for it and close its pipes, for a child nobody reads."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    if reap:
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


atexit.register(discard)
