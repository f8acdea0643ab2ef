"""Workers started on the CLI's first line (issue 27): torch imports in a child while the CLI loads.

Real children, real torch: the facts a prestarted worker prints build the same TorchInfo as reading torch in this
process; the kernel batch runs in the worker that was waiting; an unclaimed worker is killed; and a first
`python -m advisor doctor` never imports torch in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.facts import ComputeCapability
from advisor.isolation import prestart
from advisor.probe.kernels import KernelSpec, run_batch
from advisor.probe.torch_info import prestarted_facts, probe_torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _none_left() -> object:
    yield
    prestart.discard()


@pytest.mark.parametrize(("argv", "expected"), [
    (["doctor"], {prestart.TORCH}),
    (["doctor", "meta-llama/Llama-3.2-1B", "--format", "json"], {prestart.TORCH}),
    (["probe", "--format", "json"], {prestart.TORCH}),
    (["--quiet", "doctor"], {prestart.TORCH}),
    (["recommend", "gpt2"], set()),
    (["check", "gpt2"], set()),
    (["doctor", "--env", "a100.json"], set()),
    (["doctor", "--gpu=T4"], set()),
    (["doctor", "--help"], set()),
    ([], set()),
])
def test_only_commands_that_import_torch_here_start_a_worker(argv: list[str], expected: set[str]) -> None:
    """This box has no NVIDIA device node, so never the kernel worker; a snapshot target or --help starts none."""
    assert not os.path.exists("/dev/nvidiactl"), "this test describes a machine without an NVIDIA GPU"
    prestart.start_for(argv)
    assert set(prestart._STARTED) == expected


@pytest.mark.parametrize(("argv", "expected"), [(["doctor"], set()), (["doctor", "--no-cache"], {prestart.TORCH})])
def test_no_worker_for_an_answer_the_cache_probably_holds(argv: list[str], expected: set[str]) -> None:
    """A warm doctor started a worker only to kill it (0.3 s of a second core, on every warm run)."""
    prestart.start_for(argv, cached=lambda kind: kind == "torch-probe")
    assert set(prestart._STARTED) == expected


def test_the_prestarted_facts_are_the_in_process_facts() -> None:
    prestart.start(prestart.TORCH)
    facts = prestarted_facts()
    assert facts is not None and facts["version"]
    capabilities = [ComputeCapability(major=8, minor=0)]
    assert probe_torch(capabilities, facts=facts) == probe_torch(capabilities)
    assert prestarted_facts() is None  # claimed once: a second caller reads torch itself


def test_the_kernel_batch_runs_in_the_worker_that_was_waiting() -> None:
    prestart.start(prestart.KERNELS)
    pid = prestart._STARTED[prestart.KERNELS].pid
    batch = run_batch([KernelSpec("sdpa_math")], device="cpu", dtypes=["float32"])
    assert batch["sdpa_math"]["ok"] is True, batch
    assert batch["sdpa_math"]["pid"] == pid


def test_an_unclaimed_worker_is_killed() -> None:
    prestart.start(prestart.TORCH)
    proc = prestart._STARTED[prestart.TORCH]
    prestart.discard(prestart.TORCH)
    assert proc.returncode is not None  # reaped: SIGKILLed while importing torch or waiting for its request
    assert prestart.claim(prestart.TORCH) is None


def test_a_first_doctor_reads_torch_in_a_worker_not_in_its_own_process(tmp_path: Path) -> None:
    """`-X importtime` lists this process's imports only: torch is not among them on an empty cache (it was, 1.7 s
    on the critical path of a first doctor), and the report's torch section is what torch says here."""
    import torch

    env = {**os.environ, "ADVISOR_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "advisor", "doctor", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "advisor.cli" in imported
    assert "torch" not in imported
    report = json.loads(done.stdout)
    assert report["environment"]["torch"]["version"] == torch.__version__.split("+")[0]
    assert report["environment"]["torch"]["sdpa_backends"]["math"]["usable"] is True
