"""The bitsandbytes share table (data/quantizable_share.json) and the replacement rule it was generated with.

Which modules a transformers release's bitsandbytes integration replaces is read from that release's own
`integrations/bitsandbytes.py` as text (`read_rule`: importing it needs bitsandbytes), with the file and line;
the generated table holds, per release and model type, the share of weights that rule replaces and why the rest
is not (`REASONS`). Applying the rule to a built model is `advisor.model.quantizable.breakdown`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "BNB_RULE",
    "REASONS",
    "ReplacementRule",
    "ShareRow",
    "covered_release",
    "default_release",
    "installed_rule",
    "installed_transformers",
    "kind_of",
    "read_rule",
    "rule_at",
    "share_table",
    "table_releases",
    "value_at",
]

# Where the rule lives in the release the shipped table was generated with.
BNB_RULE: dict[str, Any] = {
    "transformers": "5.24.0",
    "file": "transformers/integrations/bitsandbytes.py",
    "line": 189,
    "text": "if isinstance(module, Conv1D) or type(module) is nn.Linear:",
    "skips": [
        {"file": "transformers/quantizers/base.py", "line": 39, "text": "def get_keys_to_not_convert(model) -> list:"},
        {"file": "transformers/quantizers/quantizer_bnb_8bit.py", "line": 125,
         "text": "self.modules_to_not_convert = self.get_modules_to_not_convert("},
        {"file": "transformers/quantizers/quantizers_utils.py", "line": 26,
         "text": "def should_convert_module(full_name, patterns: list[str] | None = None):"},
    ],
}


# The replacement test in `integrations/bitsandbytes.py`, by kind: "exact" (5.5+) takes only `nn.Linear` itself,
# "isinstance" (4.x, 5.0-5.4) any subclass. Matched on the stripped source line.
_RULE_PATTERNS = (
    ("exact", re.compile(r"\btype\(module\) is nn\.Linear\b")),
    ("isinstance", re.compile(r"isinstance\(module, \(nn\.Linear, Conv1D\)\)|isinstance\(module, nn\.Linear\) or")),
)


# Where each release defines its skip list (`name` found in `file`; the first file that has it is cited).
_SKIP_SOURCES = (
    ("get_keys_to_not_convert", ("quantizers/base.py", "integrations/bitsandbytes.py")),
    ("get_modules_to_not_convert", ("quantizers/base.py",)),
    ("should_convert_module", ("quantizers/quantizers_utils.py",)),
)


@dataclass(frozen=True)
class ReplacementRule:
    """Which modules one transformers release's bitsandbytes integration replaces, and where that is written."""

    release: str
    mode: str  # "exact" (type(module) is nn.Linear) | "isinstance" (nn.Linear and its subclasses)
    file: str
    line: int
    text: str
    skips: tuple[tuple[str, int, str], ...] = ()  # (file, line, text) of the skip-list functions

    def cite(self) -> str:
        return f"transformers {self.release} {self.file}:{self.line}"

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "file": self.file, "line": self.line, "text": self.text,
                "skips": [{"file": f, "line": n, "text": t} for f, n, t in self.skips]}


def read_rule(root: Path, release: str) -> ReplacementRule:
    """The replacement rule of the transformers package at `root` (its `transformers/` folder), read as text.

    Raises ValueError when no known form of the test is found: a new release changed it and must be re-read.
    """
    path = root / "integrations" / "bitsandbytes.py"
    lines = path.read_text(encoding="utf-8").splitlines()
    found: tuple[str, int, str] | None = None
    for number, line in enumerate(lines, start=1):
        for mode, pattern in _RULE_PATTERNS:
            if pattern.search(line):
                found = (mode, number, line.strip())
                break
        if found:
            break
    if found is None:
        raise ValueError(f"transformers {release}: no known replacement test in {path}: re-read the rule")
    skips: list[tuple[str, int, str]] = []
    for name, files in _SKIP_SOURCES:
        for rel in files:
            target = root / rel
            if not target.exists():
                continue
            hit = next(((n, t.strip()) for n, t in enumerate(target.read_text(encoding="utf-8").splitlines(), 1)
                        if re.match(rf"\s*def {name}\(", t)), None)
            if hit:
                skips.append((f"transformers/{rel}", *hit))
                break
    return ReplacementRule(release=release, mode=found[0], file="transformers/integrations/bitsandbytes.py",
                           line=found[1], text=found[2], skips=tuple(skips))


def installed_transformers() -> tuple[Path, str] | None:
    """(package folder, release) of the installed transformers, found without importing it (its import costs
    seconds and a quantizer module pulls in its library); None without transformers."""
    from advisor.knowledge.installed import installed

    found = installed()
    return None if found is None else (found.root / "transformers", found.version)


@lru_cache(maxsize=1)
def installed_rule() -> ReplacementRule | None:
    """The installed transformers' rule, or None without transformers."""
    found = installed_transformers()
    if found is None:
        return None
    try:
        return read_rule(*found)
    except (OSError, ValueError):
        return None


# The reason words, one place: kind_of() reads a reason back into its kind.
REASONS = {
    "fused-experts": "the experts are fused 3-D parameters, not nn.Linear modules",
    "linear-subclass": "the projections are {}, a subclass of nn.Linear",
    "convolution": "most weights are convolutions, which bitsandbytes does not replace",
    "skipped": "most linear weights are in modules transformers skips ({})",
    "other": "most weights are in parameters that are not linear layers",
}


def kind_of(reason: str) -> str:
    """The reason's kind (`fused-experts`, `linear-subclass`, ...) from its words."""
    for kind, words in REASONS.items():
        head = words.split("{}")[0]
        tail = words.split("{}")[-1]
        if reason.startswith(head) and reason.endswith(tail):
            return kind
    return "other"


@dataclass(frozen=True)
class ShareRow:
    """One model type at one release of the generated table (data/quantizable_share.json)."""

    model_type: str
    share: float
    non_embedding_share: float
    params: int
    reason: str | None
    kind: str | None
    release: str = ""


@lru_cache(maxsize=1)
def share_table() -> dict[str, Any]:
    """The generated table, read once (scripts/generate_quantizable_share.py writes it)."""
    from advisor.knowledge import data_dir

    path = data_dir() / "quantizable_share.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {"releases": [], "model_types": {}}


def table_releases() -> list[str]:
    """The transformers releases the table covers, oldest first."""
    return list(share_table().get("releases", []))


def covered_release(version: str | None) -> tuple[str, str] | None:
    """(release, "exact" | "same_minor" | "installed") standing for `version`, or None when nothing covers it.

    As in the attention history, a patch stands for its minor's stored patch; unlike it, an older stored minor
    does not stand for a newer one: the replacement rule changed within 5.x (5.4 -> 5.5), so a minor that was
    not read is reported as not covered, unless it is the installed release, which is read on demand
    (`share_row`: each model type built on the meta device with the installed classes and rule).
    """
    from packaging.version import InvalidVersion, Version

    from advisor.knowledge.installed import installed_version

    if not version:
        return None
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    stored = table_releases()
    if version in stored:
        return version, "exact"
    same = [r for r in stored if (Version(r).major, Version(r).minor) == (wanted.major, wanted.minor)]
    if same:
        return same[-1], "same_minor"
    here = installed_version()
    if here is not None and Version(here) == wanted and installed_rule() is not None:
        return here, "installed"
    return None


def default_release() -> str | None:
    """The release a caller without a target means: the installed one where covered, else the newest stored."""
    from advisor.knowledge.installed import installed_version

    covered = covered_release(installed_version())
    if covered is not None:
        return covered[0]
    stored = table_releases()
    return stored[-1] if stored else None


def value_at(runs: list[list[Any]], release: str, releases: list[str]) -> Any:
    """The value of a run-length list `[[first_release, value], ...]` at `release` (None before the first run)."""
    index = releases.index(release)
    value = None
    for first, item in runs:
        if releases.index(first) > index:
            break
        value = item
    return value


def rule_at(release: str) -> ReplacementRule | None:
    """The stored replacement rule of a covered release (the installed one's read from its files)."""
    raw = share_table().get("rules", {}).get(release)
    if not isinstance(raw, dict):
        rule = installed_rule()
        return rule if rule is not None and rule.release == release else None
    return ReplacementRule(release=release, mode=raw["mode"], file=raw["file"], line=raw["line"], text=raw["text"],
                           skips=tuple((k["file"], k["line"], k["text"]) for k in raw.get("skips", [])))
