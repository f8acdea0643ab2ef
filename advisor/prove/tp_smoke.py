"""`advisor smoke --cpu --tp N` (issue 30): tensor parallelism proven on N CPU processes, crash-isolated.

Why: a TP plan can load and still fail mid-forward (more ranks than KV heads), or load and give other logits.
The proof starts N ranks through torch's own launcher (gloo on the CPU, 127.0.0.1 only, offline), loads the
model with the plan's kwargs, compares rank 0's logits with a one-process float32 run, and reports each rank's
peak RSS against the per-rank memory plan. A hung rank is killed after the timeout and named.

Tolerance: TP changes the order of the row-parallel sums (an all-reduce of partial products), so float32 logits
differ by rounding only: max |diff| <= TP_FP32_ATOL (1e-4; measured 2.4e-7 on the tiny Llama).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.errors import UsageError
from advisor.io.rundir import temp_dir
from advisor.isolation.child import _last_line
from advisor.isolation.prestart import kill_group, worker_env
from advisor.model.spec import ModelSpec
from advisor.plan.parallelism import Parallelism
from advisor.plan.recommend import auto_class_name
from advisor.prove.smoke import Attempt, SmokeReport, validate_checkpoint

__all__ = ["RankResult", "TP_FP32_ATOL", "run_tp_smoke"]

TP_FP32_ATOL = 1e-4
WORKER = "advisor.prove.tp_worker"


class RankResult(BaseModel):
    """One rank's outcome: its peak RSS beside the per-rank plan (RSS also counts the Python runtime, torch and
    transformers: `baseline_rss_bytes` is what the rank held before loading)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int
    ok: bool
    error: str | None = None
    peak_rss_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    planned_bytes: int | None = None  # weights + KV cache + activations of one rank (advisor/estimate/per_rank.py)
    sharded_parameters: int | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = worker_env()
    env.update({"MASTER_ADDR": "127.0.0.1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
                "GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME", "lo")})
    return env


def _run(cmd: list[str], timeout: float) -> tuple[int | None, str]:
    """Run the launcher in its own group; (exit code or None on timeout, its last stderr line)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, reap=False)
        proc.wait()
        return None, ""
    except BaseException:
        kill_group(proc, reap=False)
        proc.wait()
        raise
    return proc.returncode, _last_line(err)


def _kill_ranks(folder: Path) -> None:
    """The ranks run in their own sessions (torch's launcher starts them so): kill each by the pid it wrote."""
    for pid_file in folder.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text(encoding="ascii")), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            pass


def _read(folder: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def run_tp_smoke(model: ModelSpec, parallelism: Parallelism, *, timeout: float = 600, batch: int = 2,
                 seq_len: int = 16) -> SmokeReport:
    """Reference first (one process), then N ranks through torch.distributed.run; each bounded by `timeout`."""
    if parallelism.kind != "tensor" or parallelism.from_pretrained is None:
        raise UsageError("the smoke test needs a tensor-parallel plan: " + "; ".join(parallelism.reasons))
    validate_checkpoint(model)
    size = parallelism.size
    kwargs = parallelism.from_pretrained
    label = f"tensor parallel {size} / {kwargs.get('dtype', 'float32')} / {size} CPU processes"
    request = {"path": model.path, "auto_class": auto_class_name(model), "from_pretrained": kwargs,
               "vocab_size": model.vocab_size, "batch": batch, "seq_len": min(seq_len, model.max_positions or seq_len)}
    planned = parallelism.per_rank.planned_bytes if parallelism.per_rank is not None else None
    with temp_dir("tp-smoke-") as tmp:
        folder = Path(tmp)
        request_file = folder / "request.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        code, last = _run([sys.executable, "-m", WORKER, str(request_file)], timeout)
        ref = _read(folder, "reference")
        if ref is None or not ref.get("ok"):
            _kill_ranks(folder)
            why = "timed out" if code is None else (ref or {}).get("error") or last or f"exit {code}"
            reference = f"float32 one-process reference failed ({why}); outputs were not compared"
        else:
            reference = f"float32 in one process on the CPU; inputs: {batch} x {request['seq_len']} token ids (seed 0)"
        launcher = [sys.executable, "-c", "from advisor.isolation.lifeline import bind_to_parent; bind_to_parent(); "
                    "import runpy; runpy.run_module('torch.distributed.run', run_name='__main__', alter_sys=True)",
                    "--nnodes", "1", "--nproc-per-node", str(size), "--master-addr", "127.0.0.1",
                    "--master-port", str(_free_port()), "-m", WORKER, str(request_file)]
        started = time.monotonic()
        code, last = _run(launcher, timeout)
        _kill_ranks(folder)  # whatever is left (a hung rank after the timeout)
        ranks = []
        for r in range(size):
            got = _read(folder, f"rank{r}")
            if got is None:
                error = (f"rank {r} hung: no result after {timeout:g} s, killed" if code is None
                         else f"rank {r} died without a result (launcher exit {code}; last output: {last})")
                ranks.append(RankResult(rank=r, ok=False, error=error, planned_bytes=planned))
            else:
                ranks.append(RankResult(rank=r, ok=bool(got.get("ok")), error=got.get("error"),
                                        peak_rss_bytes=got.get("peak_rss_bytes"),
                                        baseline_rss_bytes=got.get("baseline_rss_bytes"), planned_bytes=planned,
                                        sharded_parameters=got.get("sharded")))
        rank0 = _read(folder, "rank0") or {}
    diff = rank0.get("max_abs_diff")
    errors = [r.error for r in ranks if not r.ok and r.error]
    if not errors and ref is not None and ref.get("ok") and diff is None:
        errors.append("rank 0's logits could not be compared with the reference (shape differs)")
    if diff is not None and diff > TP_FP32_ATOL and kwargs.get("dtype", "float32") == "float32":
        errors.append(f"rank 0's logits differ from the one-process float32 run by {diff:.3g} (> {TP_FP32_ATOL:g})")
    attempt = Attempt(label=label, from_pretrained=kwargs, ok=not errors, error="; ".join(errors) or None,
                      load_seconds=rank0.get("load_seconds") or (time.monotonic() - started),
                      host_rss_bytes=rank0.get("peak_rss_bytes"), max_abs_diff=diff,
                      max_abs_diff_tolerance=TP_FP32_ATOL, device=f"cpu x {size} (gloo)")
    return SmokeReport(ok=attempt.ok, model=model.display, reference=reference,
                       config=dict(kwargs) if attempt.ok else None, attempts=[attempt],
                       ranks=[r.model_dump() for r in ranks])
