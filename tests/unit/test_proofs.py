"""Issue 27: doctor's kernel proofs run in one bounded pool; a proof that compiles for seconds (flex_attention)
waits until it matters: `--prove-all`, or a plan whose finalists use it; progress goes to the "advisor" logger."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from advisor.facts import KernelRun, Unavailable
from advisor.probe.kernels import KernelSpec, run_kernels
from advisor.probe.deferral import DEFERRED, deferred, prove_all
from advisor.prove.proofs import finalist_kernels


def _specs() -> list[KernelSpec]:
    return [KernelSpec(k) for k in ("sdpa_flash", "sdpa_math", "flex_attention", "bitsandbytes_int8")]


def test_the_slow_proof_waits_unless_all_are_asked_for() -> None:
    now, later = deferred(_specs())
    assert [s.kind for s in later] == ["flex_attention"] and "flex_attention" not in [s.kind for s in now]
    with prove_all():
        now, later = deferred(_specs())
    assert later == [] and len(now) == 4


def test_proofs_share_one_bounded_pool_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    lock, live, most = threading.Lock(), [0], [0]

    def child(_worker: str, request: dict[str, Any], _timeout: float) -> dict[str, Any]:
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        time.sleep(0.2)
        with lock:
            live[0] -= 1
        return {"ok": True, "cases": []}

    with caplog.at_level(logging.INFO, logger="advisor"):
        runs = run_kernels(_specs(), device="cuda:0", dtypes=["float16"], child=child, workers=2)
    assert all(run.runs is True for run in runs.values())
    assert most[0] == 2  # concurrent, and never more than the pool's bound
    assert any("proving 4 kernel(s)" in r.getMessage() for r in caplog.records)
    assert any("(4 of 4)" in r.getMessage() for r in caplog.records)


def test_a_finalist_is_read_from_the_plan() -> None:
    class Option:
        def __init__(self, attn: str) -> None:
            self.from_pretrained = {"attn_implementation": attn}

    class Plan:
        chosen = Option("flex_attention")
        alternatives = [Option("sdpa"), Option("eager"), Option("flash_attention_2")]

    assert finalist_kernels(Plan()) == {"flex_attention", "sdpa", "eager"}


def test_doctor_reports_the_deferred_proof_and_takes_prove_all(cli: Any) -> None:
    from advisor.probe.kernels import not_run

    deferred_run = not_run([KernelSpec("flex_attention")], DEFERRED)["flex_attention"]
    assert isinstance(deferred_run, KernelRun) and isinstance(deferred_run.runs, Unavailable)
    assert "--prove-all" in str(deferred_run.runs)
    code, out, err = cli("doctor", "--prove-all", "--no-measurements", "--format", "json")
    assert code in (0, 1), err
