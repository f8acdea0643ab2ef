"""Every command and format on the shipped examples, byte for byte against the goldens recorded before the package
moved into rooms (issue 26). The cases and the normalisation live in tests/golden/record.py; smoke, bench and
tune run a tiny model on the CPU, so those compare on their structure (numbers and the measured best dropped).

Regenerate after an intended change: PYTHONPATH=. python tests/golden/record.py (then read the diff).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _record() -> ModuleType:
    if "advisor_golden_record" in sys.modules:
        return sys.modules["advisor_golden_record"]
    spec = importlib.util.spec_from_file_location("advisor_golden_record", Path(__file__).with_name("record.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


record = _record()
CASES = record.cases()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return record.write_tiny_llama(tmp_path_factory.mktemp("golden") / "tiny")


def test_every_case_has_a_golden_and_every_golden_a_case() -> None:
    recorded = {p.relative_to(record.OUTPUTS).as_posix()[: -len(".txt")] for p in record.OUTPUTS.rglob("*.txt")}
    assert recorded == {case.name for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden(case: object, tiny: Path) -> None:
    path = record.golden_path(case)
    assert path.is_file(), f"missing {path}: run PYTHONPATH=. python tests/golden/record.py"
    assert record.run_case(case, tiny) == path.read_text(encoding="utf-8"), f"{case.name} changed"  # type: ignore[attr-defined]
