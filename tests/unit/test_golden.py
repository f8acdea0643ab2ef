"""Golden first screens: what a person sees for the T4 nothing-fits case, a 70B on two GPUs, and a healthy doctor.

Regenerate after an intended change: ADVISOR_REGEN_GOLDEN=1 python -m pytest -q tests/unit/test_golden.py
Targets come from --env fixtures (never the live probe), and volatile text (dates, where attention support
was read from) is normalised, so the files do not depend on the machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "fixtures" / "envs"
GOLDEN = ROOT / "golden"

CASES = {
    "recommend-t4-8b-nothing-fits": ("recommend", "meta-llama/Meta-Llama-3-8B", "--env", str(ENVS / "t4_plain.json")),
    "recommend-70b-two-a100": ("recommend", "meta-llama/Llama-2-70b-hf", "--env", str(ENVS / "a100_40gb_x2_bnb.json")),
    "doctor-healthy": ("doctor", "--env", str(ENVS / "a100_80gb_fa2_bnb.json")),
}


def normalise(text: str) -> str:
    """Drop what varies between machines and days, keep everything a reader acts on."""
    text = re.sub(r"\d{4}-\d{2}-\d{2}(T[0-9:+.]+)?", "DATE", text)
    text = re.sub(r"transformers (\d+\.\d+\.\d+) \((installed|shipped history table)\)", r"transformers \1 (SOURCE)", text)
    return text


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output(cli: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # its own empty analysis cache: a simulation another test cached must not change the figures (issue 14)
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = cli(*CASES[name])
    assert err == "" and code == (1 if "nothing-fits" in name else 0)
    got = normalise(out)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("ADVISOR_REGEN_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run ADVISOR_REGEN_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(encoding="utf-8"), f"{name} changed; if intended, regenerate with ADVISOR_REGEN_GOLDEN=1"
