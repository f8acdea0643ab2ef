"""Which renderer a report gets, by its type: the one table from report types to renderer names (text.py's
function, the `<name>.md.j2` and `<name>.html.j2` templates). A new report type adds one row here;
tests/unit/test_render_dispatch.py checks that every row has its renderers and every renderer a row.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["report_kind", "report_kinds"]


@lru_cache(maxsize=1)
def report_kinds() -> dict[type, str]:
    """Imported on first use: the report types live with what builds them, and the CLI starts without them."""
    from advisor.api import CheckResult
    from advisor.facts import Environment
    from advisor.fleet.grid import Fleet
    from advisor.matrix.history import FullMatrix, HistoryReport
    from advisor.matrix.table import MatrixView
    from advisor.plan.doctor_report import DoctorReport
    from advisor.plan.options import Recommendation
    from advisor.prove.bench import BenchReport
    from advisor.prove.onnx import OnnxSmokeReport
    from advisor.prove.smoke import SmokeReport
    from advisor.prove.tune import TuneReport

    return {
        Environment: "probe", DoctorReport: "doctor", Recommendation: "recommend", CheckResult: "check",
        MatrixView: "matrix", HistoryReport: "history", FullMatrix: "fullmatrix", Fleet: "fleet",
        SmokeReport: "smoke", OnnxSmokeReport: "smoke", BenchReport: "bench", TuneReport: "tune",
    }


def report_kind(obj: object) -> str:
    """The renderer name for `obj`'s type (or the nearest base type in the table)."""
    kinds = report_kinds()
    for cls in type(obj).__mro__:
        if cls in kinds:
            return kinds[cls]
    raise TypeError(f"no renderer for a {type(obj).__name__}")
