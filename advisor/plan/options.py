"""The plan's types: what a caller asks (PlanRequest), each option and rejection, the recommendation, and the
preferences re-ranking reads. They live apart from the planner so that the ranking, which orders options, and the
planner, which calls the ranking, both import them without importing each other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from advisor.candidate import Candidate, DtypeChoice
from advisor.estimate.memory import MemoryEstimate
from advisor.facts import SCHEMA_VERSION
from advisor.findings import Finding, Rejection, Severity
from advisor.model.spec import ModelSpec
from advisor.plan.emit import to_kwargs
from advisor.plan.parallelism import Parallelism
from advisor.plan.verdict import RankedFix
from advisor.rules.kernelization import HubKernelAdvice

__all__ = [
    "DEFAULT_PREFER", "PREFERENCES", "Evaluation", "FromPretrained", "PlanOption", "PlanRequest", "Prefer", "RankingAdvice",
    "Recommendation", "Rejection", "Serving", "Tradeoff",
]


Prefer = Literal["speed", "quality", "memory"]
PREFERENCES: tuple[str, ...] = ("speed", "quality", "memory")
DEFAULT_PREFER: Prefer = "quality"  # docs/prefer.md argues it
Serving = Literal["server", "one-shot"]  # issue 29: the CLI's --workload of recommend and doctor


class Tradeoff(BaseModel):
    """One option beside the choice: how fast it should be, on what evidence, and what it costs in fidelity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    relative_throughput: float | None  # option / choice; None = unmeasured
    basis: str  # "measured ..." or "unmeasured"
    fidelity: str


class RankingAdvice(BaseModel):
    """What re-ranking did and on what evidence; rendered by recommend, check and doctor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefer: Prefer
    workload: str
    serving: Serving = "server"
    measurements: Literal["used", "unmeasured", "off"]
    notes: list[str]
    tradeoffs: list[Tradeoff]


class PlanRequest(BaseModel):
    """What the user constrained; `auto` leaves the choice to the planner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: DtypeChoice = "auto"
    quantize: Literal["auto", "none", "8bit", "4bit", "quanto-int8", "hqq-4bit", "fp8", "fbgemm-fp8"] = "auto"
    attn: str | None = None
    batch: int = Field(1, ge=1)
    seq_len: int | None = Field(None, ge=1)
    prompt_len: int | None = Field(None, ge=1)  # the longest single prefill; default seq_len
    ignore: tuple[str, ...] = ()
    prefer: Literal["speed", "quality", "memory"] = "quality"  # issue 12: advisor/plan/ranking.py, docs/prefer.md
    measurements: bool = True  # use the measurement store and the shipped measurements (issue 12)
    # --workload. issue 29: does a compiled kernel's first call count (advisor/plan/ranking.py); issue 30: do
    # tensor parallel's fixed costs (torchrun, N processes, process group) count (advisor/plan/parallelism.py)
    serving: Serving = "server"
    allow_download: bool = False  # the load may download a Hub kernel on first use (QUANT008, advisor/rules/fp8_kernel.py)
    tp: int | None = Field(None, ge=1)  # issue 30: tensor parallel of this size (--tp), advisor/plan/parallelism.py
    simulate: bool = False  # simulate memory even where that imports transformers (--simulate, estimate/adapter.py)
    cache: bool = True  # False (--no-cache): memory simulations neither read nor write the analysis cache


class PlanOption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    candidate: Candidate
    from_pretrained: dict[str, Any]
    memory: MemoryEstimate
    findings: list[Finding]


class Recommendation(BaseModel):
    """The plan: the chosen kwargs, why, the ranked alternatives and every rejected option with its reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ok: bool
    model: ModelSpec
    target: str
    transformers: str | None
    batch: int
    seq_len: int
    chosen: PlanOption | None
    from_pretrained: dict[str, Any] | None
    memory: MemoryEstimate | None
    alternatives: list[PlanOption]
    rejected: list[Rejection]
    findings: list[Finding]
    attention_support: dict[str, bool]
    attention_support_source: str
    tokenizer: dict[str, Any]
    onnxruntime: dict[str, Any]
    python: str | None
    ranking: RankingAdvice | None = None  #: prefer and measurements (issue 12)
    verdict: str = ""  # the first line: the answer, or why nothing fits and the one change that fixes it
    fixes: list[RankedFix] = Field(default_factory=list)  # machine changes, most blocked candidates unblocked first
    passed_over: list[Rejection] = Field(default_factory=list)  # viable options a warning ranked below the choice
    facts_source: str | None = None  # where the facts about the target's transformers came from, if not the tables
    hub_kernels: HubKernelAdvice | None = None  # issue 24: Hub kernels for the chosen option (advisor/rules/kernelization.py)
    parallelism: Parallelism | None = None  # issue 30: none, pipeline or tensor (advisor/plan/parallelism.py)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Kwargs ready for `AutoModel...from_pretrained(model, **kwargs)` (torch dtypes, BitsAndBytesConfig)."""
        if self.from_pretrained is None:
            raise ValueError("no viable configuration: see .rejected")
        return to_kwargs(self.from_pretrained)


class Evaluation(BaseModel):
    """One candidate judged: its findings and memory, viable or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate: Candidate
    findings: list[Finding]
    memory: MemoryEstimate
    max_memory: dict[int, str] | None = None

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.FAIL]

    @property
    def viable(self) -> bool:
        return not self.failures


class FromPretrained(BaseModel):
    """The from_pretrained kwargs the advisor can judge (the same set `advisor check --config` reads)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: DtypeChoice | None = Field(None, description="torch dtype name; `torch.` prefix allowed")
    torch_dtype: DtypeChoice | None = Field(None, description="the pre-4.56 spelling of dtype")
    attn_implementation: str | None = Field(None, description="eager, sdpa, flash_attention_2, ...")
    device_map: str | dict[str, int | str] | None = Field(None, description='"auto", "cpu", "cuda:0" or a map')
    max_memory: dict[str, int | str] | None = Field(None, description='per-device caps, e.g. {0: "20GiB"}')
    quantization_config: dict[str, Any] | None = Field(None, description="BitsAndBytesConfig fields as a mapping")
    load_in_8bit: bool | None = Field(None, description="transformers < 5 shorthand for 8-bit bitsandbytes")
    load_in_4bit: bool | None = Field(None, description="transformers < 5 shorthand for 4-bit bitsandbytes")
    low_cpu_mem_usage: bool | None = Field(None, description="accepted; does not change the verdict")
    use_kernels: bool | None = Field(None, description="Hub kernels on or off (transformers 4.53+; KERN001-KERN003)")

    @field_validator("dtype", "torch_dtype", mode="before")
    @classmethod
    def _strip_torch(cls, value: Any) -> Any:
        return value.removeprefix("torch.") if isinstance(value, str) else value

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
