"""What tensor parallel costs once per job, measured on CPU processes (issue 30), read from `data/tp_fixed_cost.json`.

Why: `--workload one-shot` weighs TP's fixed costs (torchrun starting N processes, each importing torch and
transformers and joining a process group) against its per-token gain; the reason states the measured figure, and
where the file is missing it says the cost is unmeasured instead of inventing one. Written by
benchmarks/tp_fixed_cost.py; GPU-only costs (CUDA context, NCCL) are not in it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from advisor.knowledge.loader import data_dir, load_table

__all__ = ["TP_FIXED_COST_FILE", "TpFixedCost", "tp_fixed_cost"]

TP_FIXED_COST_FILE = "tp_fixed_cost.json"


class TpFixedCost(BaseModel):
    """Medians of one benchmark run: the same tiny job as one process and as `ranks` ranks under torchrun."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str
    generated_by: str
    machine: str
    torch: str
    transformers: str
    ranks: int = Field(ge=2)
    rounds: int = Field(ge=1)
    one_process_seconds: float = Field(gt=0)
    tensor_parallel_seconds: float = Field(gt=0)
    extra_seconds: float  # tensor_parallel - one_process: TP's fixed cost on this machine
    gloo_init_seconds: float = Field(ge=0)

    @property
    def cite(self) -> str:
        return f"data/{TP_FIXED_COST_FILE}"


def tp_fixed_cost() -> TpFixedCost | None:
    """The shipped measurement, or None where the data copy has none (the reason then says "not measured")."""
    return _load(data_dir() / TP_FIXED_COST_FILE)


@lru_cache(maxsize=4)
def _load(path: Path) -> TpFixedCost | None:
    return load_table(path, TpFixedCost) if path.is_file() else None
