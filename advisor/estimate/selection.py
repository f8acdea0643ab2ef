"""Which planner candidates get a memory simulation: only those whose answer it can change (issue 14).

A simulation runs the model's class on fake tensors, a fraction of a second per candidate, and a plan judges
dozens of candidates. Most of them are decided without it: another rule rejects them, or their closed-form
total is far from the limit either way. So every candidate is first estimated in closed form, then simulated:
- each candidate that no other rule rejects and whose closed-form total is within `MARGIN` of its budget
  (the simulation could flip its fit);
- the best-ranked viable candidate, again until the best one has been simulated (the answer's own figure).
Every other candidate keeps its closed-form figure, labelled `estimated` (MemoryEstimate.method). The choice
is a pure function of the closed-form figures and the ranking, so a first run, a `--simulate` run and a run
served from the cache simulate the same candidates and print the same labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from advisor.estimate.memory import MemoryEstimate

__all__ = ["MARGIN", "evaluate_selected", "near_limit"]

# The simulated total differs from the closed form by up to ~20 % (docs/benchmarks: activations of eager and of
# GQA in float32); a candidate further than this from its budget fits, or fails, by either figure.
MARGIN = 0.25
MEMORY_RULE = "MEM001"

E = TypeVar("E")
C = TypeVar("C")


def near_limit(memory: MemoryEstimate, margin: float = MARGIN) -> bool:
    """Whether the closed-form total is close enough to the budget that a better figure could flip the fit."""
    budget = memory.budget_bytes
    return budget > 0 and abs(memory.total_bytes - budget) <= margin * budget


def _only_memory_fails(evaluation: Any) -> bool:
    return all(f.code == MEMORY_RULE for f in evaluation.failures)


def evaluate_selected(
    universe: Sequence[C],
    evaluate: Callable[[C, bool], E],
    rank: Callable[[E], tuple[int, ...]],
    *,
    margin: float = MARGIN,
) -> list[E]:
    """`evaluate(candidate, simulate)` for every candidate, simulating only where the answer depends on it."""
    results: list[Any] = [evaluate(c, False) for c in universe]
    tried: set[int] = set()

    def simulate(i: int) -> None:
        tried.add(i)
        results[i] = evaluate(universe[i], True)

    for i, e in enumerate(results):
        if _only_memory_fails(e) and near_limit(e.memory, margin):
            simulate(i)
    for _ in range(len(universe)):
        viable = [i for i, e in enumerate(results) if e.viable]
        if not viable:
            break
        best = min(viable, key=lambda i: rank(results[i]))
        if best in tried:
            break
        simulate(best)
    return results
