"""Optional PNG chart of a benchmark (matplotlib is an extra, imported only here)."""

from __future__ import annotations

import io
from typing import Any

from advisor.errors import UsageError

__all__ = ["bench_plot", "require_matplotlib"]


def require_matplotlib() -> None:
    """--plot without matplotlib is bad input, refused before the bench spends minutes."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'inference-advisor[plot]'") from None


def bench_plot(report: Any) -> bytes:
    """The chart as PNG bytes; the caller writes them through the one output writer (advisor.io.write_output)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in report.rows if r.ok]
    values = [getattr(r, report.metric) or 0 for r in rows]
    colors = ["tab:green" if r.advisor_choice else "tab:gray" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(rows) + 1.5))
    ax.barh([r.label for r in rows], values, color=colors)
    ax.set_xlabel(report.metric.replace("_", " "))
    ax.set_title(f"{report.model}\n{report.device}, {report.workload.name} workload (green: the advisor's choice)",
                 fontsize=10)
    ax.invert_yaxis()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
