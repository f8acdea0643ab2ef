"""The rule protocol: a small named check over facts that returns findings, never raises, never probes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from packaging.version import Version

from advisor.candidate import Candidate
from advisor.facts import ComputeCapability, Environment, GpuInfo, TorchInfo, known
from advisor.findings import Finding, Severity
from advisor.knowledge import Knowledge
from advisor.model.spec import ModelSpec

__all__ = [
    "Context",
    "Rule",
    "RULES",
    "docs_url",
    "rule",
]

DOCS = "docs/rules.md#"


@dataclass(frozen=True)
class Context:
    """Everything a rule may read: the target machine, the model, the tables and the workload."""

    env: Environment
    knowledge: Knowledge
    model: ModelSpec | None = None
    support: dict[str, bool] = field(default_factory=dict)
    support_source: str = ""
    batch: int = 1
    seq_len: int = 1024
    prompt_len: int | None = None
    from_pretrained: dict[str, object] = field(default_factory=dict)  # the kwargs `check --config` was given
    allow_download: bool = False  # the user's own load may download (a Hub kernel on first use: QUANT008)
    planner: bool = False  # the planner sets `use_kernels` itself (issue 24): KERN001 informs instead of failing
    dtype_given: bool = True  # False: `check` judged from_pretrained's default dtype (no --dtype, none in the config)
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)  # per-context answers

    @property
    def cache(self) -> bool:
        """False under --no-cache: the request's switch, carried by its `Knowledge`."""
        return self.knowledge.cache

    @property
    def gpus(self) -> tuple[GpuInfo, ...]:
        return self.env.gpu_list

    @property
    def torch(self) -> TorchInfo | None:
        return self.env.torch if isinstance(self.env.torch, TorchInfo) else None

    @property
    def weakest_cc(self) -> ComputeCapability | None:
        ccs = [cc for g in self.gpus if (cc := known(g.compute_capability)) is not None]
        return min(ccs, key=lambda cc: cc.as_tuple) if ccs else None

    @property
    def rocm(self) -> bool:
        return any(g.vendor == "amd" for g in self.gpus) or bool(self.torch and self.torch.hip)

    def versions(self) -> dict[str, str | None]:
        return {name: lib.version if lib.installed else None for name, lib in self.env.libraries.items()}

    def version(self, dist: str) -> Version | None:
        raw = self.env.version_of(dist)
        if dist == "torch" and self.torch is not None:
            raw = self.torch.version
        try:
            return Version(Version(raw).base_version) if raw else None
        except Exception:
            return None


def docs_url(code: str) -> str:
    """Where a finding's explanation lives: a command that prints it from the installed package."""
    return f"advisor explain {code.upper()}"


Check = Callable[[Context, Candidate | None], Iterable[Finding]]
Remedy = Literal["switch", "machine"]


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    scope: Literal["candidate", "environment", "plan"]
    check: Check
    why: str
    fix: str
    # "switch": the fix is another candidate (kernel, dtype, GPU, less memory), which the planner already tried,
    # so it never unblocks anything by itself; "machine": the fix changes the machine (install, upgrade, set)
    remedy: Remedy = "machine"

    def __call__(self, ctx: Context, candidate: Candidate | None = None) -> list[Finding]:
        return list(self.check(ctx, candidate))

    def finding(
        self,
        severity: Severity,
        message: str,
        *,
        detected: str = "",
        required: str = "",
        fix: str | None = None,
        option: str | None = None,
    ) -> Finding:
        return Finding(
            code=self.code,
            severity=severity,
            title=self.title,
            message=message,
            detected=detected,
            required=required,
            fix=self.fix if fix is None else fix,
            option=option,
            docs_url=docs_url(self.code),
        )


RULES: list[Rule] = []


def rule(code: str, title: str, *, scope: Literal["candidate", "environment", "plan"], fix: str,
         remedy: Remedy = "machine") -> Callable[[Check], Rule]:
    """Register a rule; its docstring is the 'why' shown in docs/rules.md. The metadata lives on the rule."""

    def register(fn: Check) -> Rule:
        if any(r.code == code for r in RULES):
            raise ValueError(f"duplicate rule code {code}")
        made = Rule(code=code, title=title, scope=scope, check=fn, why=" ".join((fn.__doc__ or "").split()), fix=fix,
                    remedy=remedy)
        RULES.append(made)
        return made

    return register
