"""bitsandbytes' own facts per release (data/bitsandbytes.json): devices, backends and its native library.

transformers states only its bitsandbytes minimum (data/release_constraints.json). Which GPUs, backends and
native libraries a bitsandbytes release supports is bitsandbytes' own fact, read at its tags; each row carries
the tag, file and line it came from, and `verified: false` where no line states it, so a finding built on such
a row can say "unverified".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class BnbFact:
    fact: str
    value: str
    covers: str
    verified: bool
    note: str
    sources: tuple[dict[str, Any], ...]

    def cite(self) -> str:
        """`bitsandbytes 0.48.0 docs/source/installation.mdx:33`, or the run of its wheel that showed it
        (`reproduced: docs/knowledge/...json`), plus "unverified" where neither states it."""
        first = self.sources[0]
        where = (f"reproduced: {first['reproduction']}" if "reproduction" in first
                 else f"bitsandbytes {first['tag']} {first['file']}:{first['line']}")
        return where if self.verified else f"unverified; {where}"

    def covers_version(self, version: Version) -> bool:
        return SpecifierSet(self.covers).contains(version, prereleases=True)


@lru_cache(maxsize=4)
def load_bnb_facts(root: Path) -> tuple[BnbFact, ...]:
    raw = json.loads((root / "bitsandbytes.json").read_text(encoding="utf-8"))
    return tuple(BnbFact(r["fact"], r["value"], r["covers"], bool(r["verified"]), r.get("note", ""),
                         tuple(r["sources"])) for r in raw["rows"])


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
    return next((r for r in rows if r.covers_version(probe)), None)
