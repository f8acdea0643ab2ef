"""Issue 29's done-when that needs no GPU: on every compute-bound row of the shipped H100 measurements, recommend's
choice (with the shipped rows) reaches at least 0.97 of the best candidate measured in the same run.

The rows are data/measurements/h100.json as shipped (merged by benchmarks/merge_attention_kernels.py); a new GPU
run merged there is checked by this test without editing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_the_choice_reaches_097_of_the_best_on_every_compute_bound_row() -> None:
    from measured_choice import THRESHOLD, evaluate

    entries = evaluate("h100", workloads=("prefill",))
    fa4_runs = [e for e in entries if e["run"].startswith("attention_kernels-")]
    assert len(fa4_runs) >= 6  # the flash-attn-4 run is among them, not only the sdpa/eager rows
    low = [(e["model"], e["run"], e["advisor"], round(e["advisor_ratio"], 3)) for e in entries
           if e["advisor_ratio"] is not None and e["advisor_ratio"] < THRESHOLD]
    assert not low, low
    unscored = [e for e in entries if e["advisor_ratio"] is None]
    # only a model whose full depth does not fit one H100 unquantized in bf16 (the run cut it to 4 layers); a
    # choice that no run sharing a candidate with this one timed would be a gap in the measurements: named here
    assert all(e["advisor"] is None for e in unscored), [(e["model"], e["run"], e["advisor"]) for e in unscored]
    assert {e["model"] for e in unscored} <= {"mistralai/Mixtral-8x7B-v0.1"}
