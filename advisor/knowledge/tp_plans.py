"""Each model type's tensor-parallel plan per transformers release (issue 30), read from `data/tp_plans.json`.

Why: TP is a candidate only where the target's release gives the model type a plan; the plan says what is
sharded (and so what must divide by the TP size) and what every rank keeps whole. The table is generated from
the release wheels (scripts/generate_tp_plans.py), so a target release that is not installed is answered too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from advisor.knowledge.releases import ReleaseConstraints

__all__ = ["TpPlan", "tp_plan_for", "REPLICATING_STYLES"]

_FILE = "tp_plans.json"
# styles that keep at least one whole head per rank, replicating heads when there are fewer than ranks
# (transformers 5.25 distributed/tensor_parallel.py, UnitColwiseParallel)
REPLICATING_STYLES = ("unit_colwise",)


@dataclass(frozen=True)
class TpPlan:
    """The answer for one model type at one release: `known` false where the release is outside the table."""

    model_type: str
    release: str | None
    known: bool
    plan: dict[str, str] = field(default_factory=dict)  # module pattern -> style (base_model_tp_plan)
    head: dict[str, str] = field(default_factory=dict)  # the head classes' _tp_plan (lm_head ...)
    cite: str = ""

    @property
    def exists(self) -> bool:
        return bool(self.plan)

    def style(self, *suffixes: str) -> str | None:
        """The style of the first plan entry ending in one of `suffixes` (e.g. "k_proj")."""
        return next((s for pattern, s in self.plan.items() if pattern.endswith(suffixes)), None)

    def shards(self, module: str) -> bool:
        return any(pattern.split(".")[-1] == module for pattern in (*self.plan, *self.head))


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    from advisor.knowledge import data_dir

    path = data_dir() / _FILE
    if not path.is_file():  # a maintainer's data copy without the table: every plan is unknown (TP001)
        return {"releases": [], "model_types": {}}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def tp_plan_for(model_type: str, version: str | None, releases: ReleaseConstraints) -> TpPlan:
    """The plan of `model_type` in the stored release standing for `version`."""
    table = _table()
    release = releases.stored_release(version) if version else None
    newest = table["releases"][-1] if table["releases"] else None
    if release is None or newest is None or _release_key(release) > _release_key(newest):
        return TpPlan(model_type, release, known=False,
                      cite=f"transformers {version}: not in data/tp_plans.json (its releases end at {newest})")
    if release not in table["releases"]:  # older than the first release that reads tp_plan
        return TpPlan(model_type, release, known=True,
                      cite=f"transformers {release}: from_pretrained reads neither tp_plan nor distributed_config")
    position = table["releases"].index(release)
    for run in table["model_types"].get(model_type, []):
        first, last = table["releases"].index(run["from"]), table["releases"].index(run["to"])
        if first <= position <= last and run["value"]:
            return TpPlan(model_type, release, known=True, plan=dict(run["value"]["plan"]),
                          head=dict(run["value"]["head"]),
                          cite=f"transformers {run['release']} {run['file']}:{run['line']}")
    return TpPlan(model_type, release, known=True,
                  cite=f"transformers {release}: the {model_type} configuration has no base_model_tp_plan")


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
