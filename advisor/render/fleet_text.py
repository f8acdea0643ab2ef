"""Text for the fleet view: one block per model, a line per machine (a wide grid does not fit a terminal)."""

from __future__ import annotations

from advisor.fleet.grid import Fleet
from advisor.render.escape import text_output

__all__ = ["fleet_text"]


def fleet_text(fleet: Fleet) -> str:
    lines = [(f"Fleet: {len(fleet.models)} model(s) x {len(fleet.machines)} machine(s); batch {fleet.batch}, "
              f"seq_len {fleet.seq_len or 'model default'}"), ""]
    width = max(len(m.name) for m in fleet.machines)
    for model, row in zip(fleet.models, fleet.cells):
        lines.append(model)
        for cell in row:
            lines.append(f"  [{'ok' if cell.ok else 'XX'}] {cell.machine:<{width}}  {cell.summary}")
            if not cell.ok and cell.fix:
                lines.append(f"  {'':<{width + 7}}fix: {cell.fix}")
        lines.append("")
    runs = sum(c.ok for row in fleet.cells for c in row)
    lines.append(f"{runs} of {sum(len(r) for r in fleet.cells)} model x machine pairs can run")
    return text_output("\n".join(lines) + "\n")
