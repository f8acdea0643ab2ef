"""A rule's verdict: what, the detected value, what is required, and the fix. Styling is the renderers' job."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict

__all__ = ["Severity", "Finding"]


class Severity(str, Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return ["ok", "info", "warn", "fail"].index(self.value)


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
