"""The fleet view: which model runs on which machine, with the chosen config or the blocking reason.

`advisor matrix --env a.json --env b.json MODEL...` plans every model for every machine snapshot (or
table GPU) and keeps, per cell, either the configuration the planner chose or the rejections that left
nothing viable. Renderers (text, Markdown, JSON, HTML) only lay the cells out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.facts import SCHEMA_VERSION, Environment

__all__ = ["Fleet", "FleetCell", "FleetMachine", "build_fleet"]


class FleetMachine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str


class FleetCell(BaseModel):
    """One model on one machine: the chosen configuration, or why nothing can run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    machine: str
    ok: bool
    config: str | None = None
    from_pretrained: dict[str, Any] | None = None
    memory_gib: float | None = None
    budget_gib: float | None = None
    reasons: list[str] = []
    fix: str | None = None

    @property
    def summary(self) -> str:
        if self.ok:
            return f"{self.config} ({self.memory_gib:.1f} of {self.budget_gib:.1f} GiB)"
        return self.reasons[0] if self.reasons else "no viable configuration"


class Fleet(BaseModel):
    """Rows are models, columns machines; `cells[i][j]` is model i on machine j."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    models: list[str]
    machines: list[FleetMachine]
    batch: int
    seq_len: int | None
    cells: list[list[FleetCell]]


# Which rejection explains a blocked cell best: what blocks the whole machine, then memory (the usual
# reason a model does not run), then a missing quantization library, then the rest.
_CATEGORY = ("environment", "MEM", "QUANT")


def _blocking_rank(r: Any, all_rejections: Sequence[Any]) -> tuple[int, int, int]:
    category = 0 if r.option == "environment" else next(
        (i for i, prefix in enumerate(_CATEGORY) if r.code.startswith(prefix)), len(_CATEGORY))
    # An option that other rules also reject (bfloat16 on a T4) says less than one only this rule rejects.
    others = sum(1 for o in all_rejections if o.option == r.option and o.code != r.code)
    return (category, others, -r.candidates)


def _cell(model: str, machine: str, plan: Any) -> FleetCell:
    gib = 1024**3
    if plan.ok:
        return FleetCell(model=model, machine=machine, ok=True, config=plan.chosen.label,
                         from_pretrained=plan.from_pretrained, memory_gib=round(plan.memory.total_bytes / gib, 2),
                         budget_gib=round(plan.memory.budget_bytes / gib, 2))
    from advisor.plan.verdict import headline_fix

    rejected = sorted(plan.rejected, key=lambda r: _blocking_rank(r, plan.rejected))
    seen: set[str] = set()
    top = [r for r in rejected if not (r.code in seen or seen.add(r.code))][:3]  # type: ignore[func-returns-value]
    reasons = [f"{r.code}: {r.message}" for r in top]
    fix = top[0].fix if top else None
    lead = headline_fix(plan.fixes)  # the change recommend's verdict leads with, unless the machine blocks all
    if lead is not None and not (top and top[0].option == "environment"):
        reasons = [f"{', '.join(lead.rules)}: {lead.reason}"] + [
            f"{r.code}: {r.message}" for r in top if r.code not in lead.rules][:2]
        fix = lead.fix
    return FleetCell(model=model, machine=machine, ok=False, reasons=reasons, fix=fix)


def build_fleet(models: Sequence[str], env_files: Sequence[Path] = (), gpus: Sequence[str] = (), *,
                batch: int = 1, seq_len: int | None = None, allow_download: bool = False) -> Fleet:
    """Plan every model for every machine; models and machines are resolved once each."""
    from advisor.api import recommend, target_environment
    from advisor.errors import UsageError
    from advisor.model.resolve import resolve_model

    if not models:
        raise UsageError("the fleet view needs at least one MODEL (advisor matrix --env a.json MODEL...)")
    machines: list[tuple[FleetMachine, Environment]] = []
    for path in env_files:
        env = target_environment(env=path, import_checks=False)
        machines.append((FleetMachine(name=path.stem, description=env.description or env.source), env))
    for gpu in gpus:
        env = target_environment(gpu=gpu, import_checks=False)
        machines.append((FleetMachine(name=gpu, description=env.description or env.source), env))
    if not machines:
        raise UsageError("the fleet view needs machines: --env FILE (repeatable) or --gpu NAME (repeatable)")
    specs = [resolve_model(m, allow_download=allow_download) for m in models]
    cells = [
        [_cell(name, machine.name, recommend(spec, batch=batch, seq_len=seq_len, env=env)) for machine, env in machines]
        for name, spec in zip(models, specs)
    ]
    return Fleet(models=list(models), machines=[m for m, _ in machines], batch=batch, seq_len=seq_len, cells=cells)

