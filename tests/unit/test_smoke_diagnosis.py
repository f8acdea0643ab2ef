"""Issue 24 part 4: the smoke test names a failure that is not the configurations' fault once, and stops early.

Every error here comes from a real load in a smoke child on the CPU: an attention Hub kernel offline (kernels
0.19.1's own "is not available in the local cache" error, the one of the issue's H100 run), a `kernels` install
outside transformers 5.25's window ("Kernels are not available", a real distribution laid out as pip does), and
a T5 checkpoint whose generation config lacks `decoder_start_token_id` (generate() raises). The forced faults
(ADVISOR_SMOKE_FAULT, advisor/prove/smoke_worker.py) only make two different or size-dependent errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from advisor.model.resolve import resolve_model
from advisor.prove.diagnosis import diagnose, normalize
from advisor.prove.smoke import SmokeFailedError, run_smoke
from advisor.prove.smoke_worker import FAULT_ENV

FLASH_HUB = "kernels-community/flash-attn2"


def _options(attn: str, *dtypes: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"dtype": d, "attn_implementation": attn, **extra} for d in dtypes]


def test_normalize_drops_addresses_and_paths() -> None:
    a = "load failed: OSError: cannot open /tmp/smoke-abc/x.bin at 0x7f3a2b1c9d00"
    b = "load failed: OSError: cannot open /tmp/smoke-xyz/x.bin at 0x7f00deadbeef"
    assert normalize(a) == normalize(b) == "load failed: OSError: cannot open <path> at 0x_"
    assert normalize("kernels-community/rotary") == "kernels-community/rotary"  # a repo id is not a path


def test_an_offline_hub_kernel_stops_after_two_and_is_reported_once(tiny_llama: Path) -> None:
    report = run_smoke(resolve_model(str(tiny_llama)), _options(FLASH_HUB, "float32", "bfloat16", "float16"),
                       generate_tokens=0)
    assert not report.ok and len(report.attempts) == 2
    d = report.diagnosis
    assert d is not None and d.scope == "environment" and d.not_tried == [f"{FLASH_HUB} / float16 / CPU"]
    assert "Version 4 of 'kernels-community/flash-attn2' is not available in the local cache" in d.error
    assert "install_kernel('kernels-community/flash-attn2', version=4)" in d.fix and "sdpa" in d.fix
    message = str(SmokeFailedError(report))
    assert "environment-level failure" in message and message.count("is not available in the local cache") == 1


def test_kernels_outside_the_window_is_named_with_the_kern001_fix(tiny_llama: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "site"
    (fake / "kernels").mkdir(parents=True)
    (fake / "kernels" / "__init__.py").write_text("")
    (fake / "kernels-0.18.2.dist-info").mkdir()
    (fake / "kernels-0.18.2.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kernels\nVersion: 0.18.2\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")])))
    report = run_smoke(resolve_model(str(tiny_llama)), _options("sdpa", "float32", "bfloat16", "float16"),
                       generate_tokens=0)
    d = report.diagnosis
    assert len(report.attempts) == 2 and d is not None and d.code == "KERN001"
    assert "Kernels are not available" in d.error and "use_kernels=False" in d.fix
    assert "pip install 'kernels>=0.19.1,<0.20.0'" in d.fix
    assert not d.reference  # the reference loads with use_kernels=False: torch's own layers, no kernel needed


def test_a_generation_config_without_decoder_start_is_a_model_level_failure(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = transformers.T5Config(d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, vocab_size=128,
                                   decoder_start_token_id=None, pad_token_id=0, eos_token_id=1)
    transformers.T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    assert "decoder_start_token_id" not in json.loads((tmp_path / "t5" / "generation_config.json").read_text())
    report = run_smoke(resolve_model(str(tmp_path / "t5")), _options("eager", "float32", "bfloat16", "float16"),
                       generate_tokens=2)
    d = report.diagnosis
    assert len(report.attempts) == 2 and d is not None and d.scope == "model" and d.code is None
    assert "decoder_start_token_id" in d.error and "generation_config.json" in d.fix
    assert not d.reference  # the float32 reference runs only the forward pass: it passed


def test_different_errors_keep_the_per_candidate_shape(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "raise@0,oom@1")
    report = run_smoke(resolve_model(str(tiny_llama)), _options("eager", "float32", "float32", "float32"),
                       generate_tokens=0, compare=False)
    assert [a.ok for a in report.attempts] == [False, False, True] and report.diagnosis is None


def test_out_of_memory_twice_never_stops_early(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "oom")
    report = run_smoke(resolve_model(str(tiny_llama)), _options("eager", "float32", "bfloat16", "float16"),
                       generate_tokens=0, compare=False)
    assert len(report.attempts) == 3 and report.diagnosis is None  # a smaller candidate may fit


def test_an_unknown_shared_error_is_still_named_once(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "raise")
    report = run_smoke(resolve_model(str(tiny_llama)), _options("eager", "float32", "bfloat16", "float16"),
                       generate_tokens=0, compare=False)
    assert len(report.attempts) == 2 and report.diagnosis is not None and report.diagnosis.scope == "unknown"


def test_all_candidates_runs_every_one_and_still_diagnoses(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "raise")
    report = run_smoke(resolve_model(str(tiny_llama)), _options("eager", "float32", "bfloat16", "float16"),
                       all_candidates=True, generate_tokens=0, compare=False)
    assert len(report.attempts) == 3 and report.diagnosis is not None and report.diagnosis.not_tried == []


class _A:
    def __init__(self, error: str | None, ok: bool = False, label: str = "x") -> None:
        self.error, self.ok, self.label, self.from_pretrained = error, ok, label, {}


def test_one_attempt_is_diagnosed_only_for_a_known_error() -> None:
    known = "load failed: ValueError: Kernel repository 'kernels-community/rotary' could not verify publisher trust status."
    d = diagnose([_A(known)])
    assert d is not None and d.code == "KERN002" and "HF_HUB_OFFLINE=1" in d.fix
    assert diagnose([_A("load failed: RuntimeError: something")]) is None
    assert diagnose([_A(known), _A(known, ok=True)]) is None


def test_a_branch_missing_offline_is_named_with_its_install_call() -> None:
    error = ("load failed: ValueError: Cannot resolve revision 'main' of 'kernels-community/liger_kernels' to a commit: "
             "the ref is not in the local cache and Hugging Face Hub is in offline mode.")
    d = diagnose([_A(error), _A(error, label="y")])
    assert d is not None and d.scope == "environment" and d.code == "KERN001"
    assert "install_kernel('kernels-community/liger_kernels', revision='main')" in d.fix
