"""Which renderer a report gets, by its type: the one table from report types to renderer names (text.py's
function, the `<name>.md.j2` and `<name>.html.j2` templates). A new report type adds one row here;
tests/unit/test_render_dispatch.py checks that every row names a real type, has its renderers, and every renderer
a row.
"""

from __future__ import annotations

__all__ = ["REPORT_KINDS", "report_kind"]

# the report types by dotted name, so that rendering one report imports no other report's module (a `recommend`
# need not import the bench, tune and smoke machinery to find its renderer: issue 27's warm paths)
REPORT_KINDS: dict[str, str] = {
    "advisor.facts.Environment": "probe",
    "advisor.plan.doctor_report.DoctorReport": "doctor",
    "advisor.plan.options.Recommendation": "recommend",
    "advisor.api.CheckResult": "check",
    "advisor.matrix.table.MatrixView": "matrix",
    "advisor.matrix.history.HistoryReport": "history",
    "advisor.matrix.history.FullMatrix": "fullmatrix",
    "advisor.fleet.grid.Fleet": "fleet",
    "advisor.prove.smoke.SmokeReport": "smoke",
    "advisor.prove.onnx.OnnxSmokeReport": "smoke",
    "advisor.prove.bench.BenchReport": "bench",
    "advisor.prove.tune.TuneReport": "tune",
}


def report_kind(obj: object) -> str:
    """The renderer name for `obj`'s type (or the nearest base type in the table)."""
    for cls in type(obj).__mro__:
        kind = REPORT_KINDS.get(f"{cls.__module__}.{cls.__qualname__}")
        if kind is not None:
            return kind
    raise TypeError(f"no renderer for a {type(obj).__name__}")
