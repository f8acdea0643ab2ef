"""Terminal lines for issue 12: the re-ranking advice of recommend/doctor and the `advisor tune` report."""

from __future__ import annotations

from typing import Any

__all__ = ["ranking_lines", "tune_lines"]


def ranking_lines(advice: Any) -> list[str]:
    """Measurement notes, then each option's expected throughput relative to the choice and its fidelity."""
    if advice is None or not (advice.notes or advice.tradeoffs):
        return []  # nothing fits: nothing to rank
    serving = getattr(advice, "serving", "server")
    lines = ["", f"Ranking (--prefer {advice.prefer}; --workload {serving}; measurements: {advice.measurements}):"]
    lines += [f"  {note}" for note in advice.notes]
    if advice.tradeoffs:
        # the first ten, and every measured option after them: a measured trade-off is what the ranking is for
        shown = [t for i, t in enumerate(advice.tradeoffs) if i < 10 or t.relative_throughput is not None]
        width = max(len("option"), *(len(t.label) for t in shown))
        lines.append(f"  {'option':<{width}}  {'throughput vs choice':>20}  fidelity; basis")
        for t in shown:
            rel = f"{t.relative_throughput:.2f}x" if t.relative_throughput is not None else "unmeasured"
            lines.append(f"  {t.label:<{width}}  {rel:>20}  {t.fidelity}; {t.basis}")
        if len(advice.tradeoffs) > len(shown):
            lines.append(f"  ... and {len(advice.tradeoffs) - len(shown)} more, unmeasured (--format json lists all)")
    return lines


def tune_lines(r: Any) -> list[str]:
    """Ranking with spread, the static choice beside the measured winner, and what the budget skipped."""
    lines = [f"Tune: {r.model} on {r.device}",
             (f"Workload {r.workload}: metric {r.metric}; {r.weights}; layers {r.layers_run} of {r.layers_total}"
              f"{'' if r.layers_run == r.layers_total else ' (truncated: ' + r.depth_note + ')'}"),
             f"Budget {r.budget_seconds:g} s (+{r.margin_seconds:g} s margin to stop a child), used "
             f"{r.elapsed_seconds:.1f} s", ""]
    if r.budget_note:
        lines[-1:-1] = [f"Budget note: {r.budget_note}"]
    lines.append(f"  {'#':>2} {'configuration':<45} {'tok/s':>10} {'spread':>7} {'vs best':>8}")
    for i, row in enumerate(r.ranking, 1):
        mark = " <- static choice" if row.label == r.static_choice else ""
        lines.append(f"  {i:>2} {row.label:<45} {row.value:>10.1f} {100 * (row.spread or 0):>6.1f}% "
                     f"{row.value / r.ranking[0].value:>7.2f}x{mark}")
    for row in r.failed:
        lines.append(f"   - {row.label:<45} failed: {row.error}")
    for row in r.skipped:
        lines.append(f"   - {row.label:<45} skipped: {row.reason}")
    lines += ["", f"Static choice: {r.static_choice}; measured winner: {r.winner}"
              + (f"; static/winner = {r.static_ratio:.3f}" if r.static_ratio is not None else "")]
    lines += [f"Note: {n}" for n in r.notes]
    if r.estimates:  # issue 27: each candidate's estimated cost, as estimated just before its turn
        lines += ["", "Order and estimated cost (estimates, before each candidate's turn):"]
        for e in r.estimates:
            took = f"; took {e.measured_seconds:.1f} s" if e.measured_seconds is not None else ""
            lines.append(f"  {e.position:>2} {e.label:<45} ~{e.seconds:.0f} s (start {e.start:.0f}, load {e.load:.0f}, "
                         f"compile {e.compile:.0f}, timed {e.timed:.0f}): {e.outcome}{took}")
            lines.append(f"     {e.order_reason}")
    return lines
