"""bitsandbytes' own facts per release (data/bitsandbytes.json): devices, backends and its native library.

transformers states only its bitsandbytes minimum (data/release_constraints.json). Which GPUs, backends and
native libraries a bitsandbytes release supports is bitsandbytes' own fact, read at its tags; each row carries
the tag, file and line it came from; a row is `verified` only where a run of the release's wheel showed it (its
`reproduction`, issue 28), so a finding built on a row that was only read says "unverified".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from advisor.errors import DataTableError
from advisor.knowledge import version_matches
from advisor.knowledge.schema import UNVERIFIED, Reproduction, provenance_problem


@dataclass(frozen=True)
class BnbFact:
    fact: str
    value: str
    covers: str
    verified: bool
    note: str
    sources: tuple[dict[str, Any], ...]
    reproduction: Reproduction | None = None

    def cite(self) -> str:
        """The run of its wheel that showed it (`reproduced: docs/knowledge/...json`), else where it was read,
        `unverified: read, not run; bitsandbytes 0.48.0 docs/source/installation.mdx:33`."""
        if self.reproduction is not None:
            return f"reproduced: {self.reproduction.output}"
        first = self.sources[0]
        return f"{UNVERIFIED}; bitsandbytes {first['tag']} {first['file']}:{first['line']}"


@lru_cache(maxsize=4)
def load_bnb_facts(root: Path) -> tuple[BnbFact, ...]:
    raw = json.loads((root / "bitsandbytes.json").read_text(encoding="utf-8"))
    for r in raw["rows"]:
        problem = provenance_problem({**r, "source": json.dumps(r["sources"]) if r["sources"] else ""})
        if problem:
            raise DataTableError(str(root / "bitsandbytes.json"), f"{r['fact']} {r['covers']}: {problem}")
    return tuple(BnbFact(r["fact"], r["value"], r["covers"], bool(r["verified"]), r.get("note", ""),
                         tuple(r["sources"]), Reproduction.model_validate(r["reproduction"])
                         if r.get("reproduction") else None) for r in raw["rows"])


def bnb_fact(root: Path, fact: str, version: str | None) -> BnbFact | None:
    """The row of `fact` that covers this bitsandbytes version; for an unknown version, the newest release's row."""
    rows = [r for r in load_bnb_facts(root) if r.fact == fact]
    if version is None:
        probe = Version("9999")
    else:
        try:
            probe = Version(version.split("+")[0])
        except InvalidVersion:
            return None
    return next((r for r in rows if version_matches(str(probe), r.covers)), None)
