"""Kernels that really run: the probe's tiny call per kernel, in a child, and the rules that read it.

The worker and run_child are real; only the kernels in the failure tests are fakes, written as a module on
the child's PYTHONPATH: one raises CUDA's "no kernel image" error, one segfaults, one hangs. SDPA's math
backend runs for real on this CPU. Without a GPU, every entry must say why nothing ran.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from advisor.facts import Environment, KernelCase, KernelRun, TorchInfo, Unavailable
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe import probe_kernel_runs
from advisor.probe.kernels import KernelSpec, kernel_specs, run_batch, run_kernels
from advisor.probe.packages import probe_libraries
from advisor.probe.target import load_environment

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"

FAKE = '''
import os, signal, time

def no_image(q, k, v, **kwargs):
    raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

def segfault(q, k, v, **kwargs):
    os.kill(os.getpid(), signal.SIGSEGV)

def hang(q, k, v, **kwargs):
    time.sleep(600)

def works(q, k, v, causal=False):
    assert causal is True and q.shape[1] == 128 and q.shape[2] == 2  # (batch, seq, heads, dim)
    return (q * 1.0,)
'''


@pytest.fixture
def fake_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module of fake kernels the child can import (run_child passes PYTHONPATH on)."""
    (tmp_path / "fake_kernels.py").write_text(textwrap.dedent(FAKE))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def _fake(function: str) -> KernelSpec:
    return KernelSpec(f"fake_{function}", "fake_kernels", function, "bshd", False, {"causal": True})


@pytest.mark.slow
def test_fake_kernels_fail_in_the_child_with_their_reason(fake_kernels: None) -> None:
    specs = [_fake(name) for name in ("no_image", "segfault", "hang", "works")]
    runs = run_kernels(specs, device="cpu", dtypes=["float32"], timeout=20)

    no_image = runs["fake_no_image"]
    assert no_image.runs is False and no_image.device == "cpu"
    assert no_image.error is not None and "no kernel image is available" in no_image.error
    assert "no kernel compiled for this GPU's architecture" in no_image.error
    assert [(c.dtype, c.head_dim, c.runs) for c in no_image.cases] == [("float32", 64, False), ("float32", 128, False)]

    segfault = runs["fake_segfault"]
    assert segfault.runs is False and segfault.error is not None and "SIGSEGV" in segfault.error

    hang = runs["fake_hang"]
    assert hang.runs is False and hang.error == "timed out after 20 s"

    works = runs["fake_works"]
    assert works.runs is True and works.error is None
    assert [(c.head_dim, c.runs) for c in works.cases] == [(64, True), (128, True)]


def test_a_kernel_that_does_not_import_fails_before_any_case(fake_kernels: None) -> None:
    runs = run_kernels([KernelSpec("fa", "no_such_flash_module", "f", "bshd")], device="cpu", dtypes=["float32"])
    assert runs["fa"].runs is False and runs["fa"].cases == ()
    assert "No module named 'no_such_flash_module'" in (runs["fa"].error or "")


def test_sdpa_math_really_runs_on_this_cpu_for_each_dtype_and_head_dim() -> None:
    runs = run_kernels([KernelSpec("sdpa_math")], device="cpu", dtypes=["float32", "bfloat16"])
    math = runs["sdpa_math"]
    assert math.runs is True, math.error
    assert {(c.dtype, c.head_dim) for c in math.cases} == {(d, h) for d in ("float32", "bfloat16") for h in (64, 128)}


def test_the_sdpa_flash_backend_alone_refuses_the_cpu() -> None:
    """sdpa_kernel([one backend]) must not fall back: on the CPU the flash backend is refused, not replaced."""
    runs = run_kernels([KernelSpec("sdpa_cudnn")], device="cpu", dtypes=["float32"])
    assert runs["sdpa_cudnn"].runs is False and runs["sdpa_cudnn"].error


def test_without_a_gpu_every_kernel_says_why_nothing_ran() -> None:
    libraries = probe_libraries(import_checks=False)
    runs = probe_kernel_runs(
        Unavailable(reason="NVML found no driver"), TorchInfo(version="2.13.0", cuda_available=False), libraries
    )
    assert set(runs) >= {"sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sdpa_math", "flex_attention"}
    for run in runs.values():
        assert isinstance(run.runs, Unavailable) and run.cases == ()
        # issue 31: the GPUs entry gives the reason; repeating it here nested it in parentheses
        assert "nothing was run: no GPU for torch 2.13.0" == run.runs.reason


def test_installed_kernels_are_listed_from_the_snapshot_libraries() -> None:
    env = load_environment(ENVS / "h100_fa2_fa3_bnb.json")
    kinds = [s.kind for s in kernel_specs(env.libraries, hub_kernels=["kernels-community/vllm-flash-attn3"])]
    assert kinds[:5] == ["sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sdpa_math", "flex_attention"]
    assert {"flash_attention_2", "flash_attention_3", "bitsandbytes_int8", "bitsandbytes_nf4"} <= set(kinds)
    fa2 = next(s for s in kernel_specs(env.libraries, hub_kernels=[]) if s.kind == "flash_attention_2")
    assert fa2.request("cuda:0", ["float32", "bfloat16"])["dtypes"] == ["bfloat16"]  # no fp32 flash kernel


def test_probe_no_kernel_runs_flag_records_the_skip(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("probe", "--no-kernel-runs", "--format", "json")
    assert code == 0, err
    runs = json.loads(out)["kernel_runs"]
    assert runs and all(r["runs"]["reason"] == "kernel runs skipped (--no-kernel-runs)" for r in runs.values())


def test_old_snapshots_still_load_with_no_kernel_runs() -> None:
    for path in sorted(ENVS.glob("*.json")):
        env = load_environment(path)
        assert env.kernel_runs == {} and env.kernel_failure("flash_attention_2") is None


def _with_runs(env: Environment, *runs: KernelRun) -> Environment:
    return env.model_copy(update={"kernel_runs": {r.kernel: r for r in runs}})


def _failed(kernel: str, dtype: str, error: str) -> KernelRun:
    cases = (KernelCase(dtype=dtype, head_dim=64, runs=False, error=error),)
    return KernelRun(kernel=kernel, runs=False, error=error, device="cuda:0", cases=cases)


def test_a_flash_attn_that_imports_but_does_not_run_is_rejected() -> None:
    env = load_environment(ENVS / "a100_80gb_fa2_bnb.json")
    assert env.library("flash-attn").importable is True
    broken = _with_runs(env, _failed("flash_attention_2", "bfloat16", "RuntimeError: CUDA error: no kernel image is available"))
    rec = make_plan(resolve_model("meta-llama/Meta-Llama-3-8B"), broken, PlanRequest())
    assert rec.from_pretrained is not None and rec.from_pretrained["attn_implementation"] == "sdpa"
    reasons = [r.message for r in rec.rejected if r.option == "flash_attention_2" and r.code == "ATTN003"]
    assert reasons and "imports but its kernel does not run" in reasons[0] and "no kernel image" in reasons[0]


def test_a_run_that_failed_only_in_another_dtype_does_not_reject() -> None:
    env = _with_runs(load_environment(ENVS / "a100_80gb_fa2_bnb.json"), _failed("flash_attention_2", "float16", "boom"))
    assert env.kernel_failure("flash_attention_2", "bfloat16") is None
    assert env.kernel_failure("flash_attention_2", "float16") == "boom (float16, head_dim 64)"


def test_a_bitsandbytes_matmul_that_fails_rejects_that_quantization() -> None:
    env = load_environment(ENVS / "t4_bnb_fa2.json")
    broken = _with_runs(env, _failed("bitsandbytes_int8", "float16", "RuntimeError: CUDA error: no kernel image is available"))
    rec = make_plan(resolve_model("meta-llama/Llama-2-7b-hf"), broken, PlanRequest())
    assert any(r.code == "QUANT002" and "8bit matmul fails" in r.message for r in rec.rejected)
    assert rec.from_pretrained is None or rec.from_pretrained.get("quantization_config", {}).get("load_in_8bit") is not True


# -- one child for all kernels (issue 14), isolation kept for the ones that fail -----------------------


def test_kernels_that_run_share_one_child() -> None:
    """One torch import for every kernel: both SDPA backends come back from the same process."""
    specs = [KernelSpec("sdpa_math"), KernelSpec("sdpa_efficient")]
    batch = run_batch(specs, device="cpu", dtypes=["float32"])
    assert set(batch) == {"sdpa_math", "sdpa_efficient"}
    assert batch["sdpa_math"]["ok"] is True, batch["sdpa_math"]
    assert batch["sdpa_math"]["pid"] == batch["sdpa_efficient"]["pid"]


@pytest.mark.slow
def test_a_crash_in_the_shared_child_costs_only_that_kernel(fake_kernels: None) -> None:
    specs = [_fake("works"), _fake("segfault"), KernelSpec("fake_after", "fake_kernels", "works", "bshd", False,
                                                           {"causal": True})]
    batch = run_batch(specs, device="cpu", dtypes=["float32"], timeout=20)
    assert batch["fake_works"]["ok"] is True
    assert batch["fake_segfault"]["ok"] is False and "SIGSEGV" in batch["fake_segfault"]["error"]
    assert "fake_after" not in batch  # never reached: it runs in a child of its own
    runs = run_kernels(specs, device="cpu", dtypes=["float32"], timeout=20)
    assert [runs[s.kind].runs for s in specs] == [True, False, True]
    assert "SIGSEGV" in (runs["fake_segfault"].error or "")


def test_a_failed_kernel_stops_the_shared_child(fake_kernels: None) -> None:
    """A failed call may leave the CUDA context unusable: the kernels after it are run alone, not in that child."""
    specs = [_fake("no_image"), _fake("works")]
    batch = run_batch(specs, device="cpu", dtypes=["float32"], timeout=20)
    assert set(batch) == {"fake_no_image"} and batch["fake_no_image"]["ok"] is False
    runs = run_kernels(specs, device="cpu", dtypes=["float32"], timeout=20)
    assert runs["fake_works"].runs is True and runs["fake_no_image"].runs is False


def _nvml_with_one_gpu() -> object:
    from advisor.facts import ComputeCapability, DriverInfo
    from advisor.probe.nvml import NvmlGpu, NvmlResult

    gpu = NvmlGpu(index=0, name="H100", uuid="GPU-test", compute_capability=ComputeCapability(major=9, minor=0),
                  memory_total_bytes=80 << 30, memory_free_bytes=80 << 30, mig_mode=False)
    return NvmlResult(gpus=(gpu,), driver=DriverInfo())


def test_kernel_runs_that_all_ran_are_reused_and_failures_are_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second doctor on an unchanged install reuses the runs (issue 14); a failed run is tried again."""
    from advisor.io import analysis_cache
    from advisor.probe import _cached_kernel_runs

    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    nv = _nvml_with_one_gpu()
    first = _cached_kernel_runs([KernelSpec("sdpa_math")], nv, ["float32"], device="cpu")  # type: ignore[arg-type]
    assert first["sdpa_math"].runs is True
    entries = list((tmp_path / "v1" / "kernel-runs").glob("*.json"))
    assert len(entries) == 1
    assert _cached_kernel_runs([KernelSpec("sdpa_math")], nv, ["float32"], device="cpu") == first  # type: ignore[arg-type]
    failed = _cached_kernel_runs([KernelSpec("sdpa_cudnn")], nv, ["float32"], device="cpu")  # type: ignore[arg-type]
    assert failed["sdpa_cudnn"].runs is False
    assert len(list((tmp_path / "v1" / "kernel-runs").glob("*.json"))) == 1  # the failure was not kept
