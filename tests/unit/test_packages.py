"""Library probing: versions from metadata, and native imports checked in real child processes."""

from __future__ import annotations

import time

from advisor.facts import Unavailable
from advisor.probe.packages import probe_libraries, run_import_check


def test_a_failing_import_reports_its_last_error_line() -> None:
    check = run_import_check("raise ImportError('flash_attn_2_cuda.so: undefined symbol: _ZN3c10')")
    assert check.ok is False
    assert "undefined symbol" in (check.error or "")


def test_a_crashing_import_does_not_take_the_probe_down() -> None:
    check = run_import_check("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert check.ok is False
    assert "signal" in (check.error or "")


def test_a_hanging_import_times_out() -> None:
    start = time.monotonic()
    check = run_import_check("import time\ntime.sleep(30)", timeout=2)
    assert isinstance(check.ok, Unavailable) and "timed out" in check.ok.reason
    assert time.monotonic() - start < 20


def test_details_are_read_from_the_child() -> None:
    check = run_import_check('print(json.dumps({"providers": ["CPUExecutionProvider"]}))')
    assert check.ok is True and check.details == {"providers": ["CPUExecutionProvider"]}


def test_missing_distribution_is_reported_not_installed() -> None:
    libs = probe_libraries(import_checks=False, versions=lambda dist: None)
    assert all(not lib.installed for lib in libs.values())
    assert "flash-attn" in libs and "bitsandbytes" in libs and "onnxruntime-gpu" in libs


def test_installed_native_extension_is_import_checked() -> None:
    seen: list[str] = []

    def runner(code: str, torch_first: bool = False):  # type: ignore[no-untyped-def]
        from advisor.probe.packages import ImportCheck

        seen.append(code)
        return ImportCheck(False, "native library not loaded", {"backend": "CUDA", "native_library": "missing"})

    versions = {"bitsandbytes": "0.50.2", "torch": "2.6.0"}
    libs = probe_libraries(versions=versions.get, runner=runner)
    assert libs["bitsandbytes"].importable is False and libs["bitsandbytes"].details["native_library"] == "missing"
    assert libs["torch"].importable is None  # no native check declared for torch: not claimed either way
    assert len(seen) == 1
