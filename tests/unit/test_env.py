"""Every environment variable the advisor reads is listed in advisor/env.py and read through env.read (issue 26):
no module reads os.environ for a decision of its own, and the cache folder is resolved in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from advisor import env
from advisor.io import cache_root
from advisor.knowledge import measurements

PACKAGE = Path(__file__).resolve().parents[2] / "advisor"
# where the advisor saves and restores variables it sets itself (io/environ.py, the one scoped environment since
# issue 26: the libraries' quiet switches, offline mode), and the script probe/packages.py runs in a child, which
# reads bitsandbytes' own override as bitsandbytes does
SAVE_RESTORE = {"io/environ.py", "probe/packages.py"}


def test_every_advisor_variable_is_listed() -> None:
    named = set()
    for path in PACKAGE.rglob("*.py"):
        named |= set(re.findall(r"\bADVISOR_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    assert named and named <= set(env.VARIABLES), sorted(named - set(env.VARIABLES))


def test_no_module_reads_the_environment_itself() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        code = "\n".join(line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())
        if rel != "env.py" and rel not in SAVE_RESTORE and re.search(r"os\.environ\.get\(|os\.getenv\(|in os\.environ", code):
            readers.append(rel)
    assert readers == []


def test_an_unlisted_variable_is_refused() -> None:
    with pytest.raises(KeyError, match="list it in advisor/env.py"):
        env.read("ADVISOR_SOMETHING_NEW")


def test_the_cache_folder_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.CACHE_DIR, str(tmp_path))
    assert measurements.cache_dir() == cache_root.cache_dir() == tmp_path
