"""A rule's verdict: what, the detected value, what is required, and the fix. Styling is the renderers' job."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Severity", "Finding", "Rejection"]


class Severity(str, Enum):
    """The one status vocabulary (issue 26): a finding's severity, and the status of a report item."""

    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return ["ok", "info", "warn", "fail"].index(self.value)

    @property
    def word(self) -> str:
        """How a report section writes it (doctor's JSON and pages say "warning" and "problem")."""
        return _WORDS[self]

    @classmethod
    def of(cls, status: str | Severity) -> Severity:
        """A severity from either spelling (a finding's value or a section's word)."""
        found = next((s for s, w in _WORDS.items() if w == status), None)
        return found if found is not None else cls(status)


_WORDS = {Severity.OK: "ok", Severity.INFO: "info", Severity.WARN: "warning", Severity.FAIL: "problem"}


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    severity: Severity
    title: str
    message: str
    detected: str = ""
    required: str = ""
    fix: str = ""
    option: str | None = None
    docs_url: str = ""


class Rejection(BaseModel):
    """Why an option was rejected (or ranked below the choice): the finding's code, message and fix, and the
    candidates it covers. One shape for the plan and smoke (issue 26); the JSON keeps its keys `rule` and `reason`
    (the aliases, used whenever it is dumped)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    option: str
    code: str = Field(alias="rule")
    message: str = Field(alias="reason")
    fix: str = ""
    candidates: int = 1
    label: str = ""  # the whole candidates it covers, e.g. "eager|sdpa / float16 + bnb 8bit / 1 GPU"
    labels: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, finding: Finding, option: str, **extra: object) -> Rejection:
        return cls(option=option, code=finding.code, message=finding.message, fix=finding.fix, **extra)  # type: ignore[arg-type]

    def as_finding(self, message: str | None = None) -> Finding:
        """The failing finding it stands for (NoViablePlanError carries findings)."""
        return Finding(code=self.code, severity=Severity.FAIL, title=self.option, message=message or self.message,
                       fix=self.fix, option=self.option)
