"""Day 0 of a transformers release: the installed release is newer than the advisor's tables (issue 24).

The tables are copied without the installed release (`scripts/ingest_release.py --without`, the inverse of the
ingest that added it) and the real CLI runs in child processes with `ADVISOR_DATA_DIR` pointing at the copy and an
empty cache: exactly what a user meets the day a release comes out. The facts must then come from the installed
package (and equal what the generators stored for that release), be said once in the header, and never be the
newest stored release's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from advisor.knowledge.installed import derived_facts, installed
from advisor.knowledge.releases import ReleaseConstraints

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data"
ENVS = ROOT / "tests" / "fixtures" / "envs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release() -> str:
    here = installed()
    stored = json.loads((SHIPPED / "release_constraints.json").read_text())["releases"]
    if here is None or here.version != stored[-1]:
        pytest.skip(f"needs the newest stored release installed ({stored[-1]}); installed: {here and here.version}")
    return here.version


@pytest.fixture(scope="module")
def hidden(release: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a child that meets `release` as newer than its tables, with an empty cache."""
    data = tmp_path_factory.mktemp("day0") / "data"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "ingest_release.py"), release, "--without",
                           "--output", str(data)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    cache = tmp_path_factory.mktemp("day0-cache")
    return {**os.environ, "ADVISOR_DATA_DIR": str(data), "ADVISOR_CACHE_DIR": str(cache)}


def _advisor(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "advisor", *argv], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)
    return done.returncode, done.stdout, done.stderr


def _previous(data: Path, release: str) -> str:
    return str(json.loads((data / "release_constraints.json").read_text())["releases"][-1])


def test_the_hidden_copy_really_lacks_the_release(hidden: dict[str, str], release: str) -> None:
    data = Path(hidden["ADVISOR_DATA_DIR"])
    assert Version(_previous(data, release)) < Version(release)
    assert not (data / "attention" / f"transformers-{release}.json").exists()
    assert release not in json.loads((data / "quantizable_share.json").read_text())["releases"]


def test_facts_read_from_the_package_equal_what_the_generator_stored(hidden: dict[str, str], release: str) -> None:
    """The derived facts of the installed release, added to the hidden copy, give back the shipped table."""
    here = installed()
    assert here is not None
    trimmed = ReleaseConstraints.model_validate_json((Path(hidden["ADVISOR_DATA_DIR"]) /
                                                      "release_constraints.json").read_bytes())
    shipped = ReleaseConstraints.model_validate_json((SHIPPED / "release_constraints.json").read_bytes())
    extended = trimmed.with_release(here.version, derived_facts(here))
    assert extended.releases == shipped.releases
    for name, runs in shipped.facts.items():
        got = [(r.first, r.last, r.value, r.file, r.line) for r in extended.facts[name]]
        assert got == [(r.first, r.last, r.value, r.file, r.line) for r in runs], name


def test_recommend_says_where_the_facts_came_from_and_gives_no_harmful_fix(hidden: dict[str, str],
                                                                            release: str) -> None:
    code, out, err = _advisor(hidden, "recommend", "meta-llama/Llama-3.2-1B", "--gpu", "H100")
    assert code == 0, err
    previous = _previous(Path(hidden["ADVISOR_DATA_DIR"]), release)
    assert (f"Facts:  transformers {release}: read from the installed package (newer than the shipped tables, "
            f"{previous})") in out
    assert "LIB004" not in out  # the stored newest release's `kernels` window is not this release's
    assert "[transformers]" not in err  # transformers' own logging stays off stderr without -v
    code, out, _ = _advisor(hidden, "recommend", "meta-llama/Llama-3.2-1B", "--gpu", "H100", "--format", "json")
    assert json.loads(out)["facts_source"].startswith(f"transformers {release}: read from the installed package")


def test_check_fails_falcon_8bit_with_this_releases_rule(hidden: dict[str, str], release: str) -> None:
    """QUANT007 is judged with the installed release's replacement rule, read on demand: not a pass because the
    share table lacks the release."""
    code, out, err = _advisor(hidden, "check", "tiiuae/falcon-7b", "--gpu", "T4", "--quantize", "8bit",
                              "--dtype", "float16")
    assert code == 1, err
    assert (f"QUANT007 bitsandbytes would quantize only 0% of this model's weights in transformers {release}: "
            "the projections are FalconLinear") in out
    assert f"Facts: transformers {release}: read from the installed package" in out


def test_matrix_reads_the_release_once_then_answers_from_the_cache(hidden: dict[str, str], release: str) -> None:
    cache = Path(hidden["ADVISOR_CACHE_DIR"])
    code, first, err = _advisor(hidden, "matrix", "--format", "json")
    assert code == 0 and err == "", err  # no transformers log line; progress lines go to a TTY only
    entries = sorted(str(p.relative_to(cache)) for p in cache.rglob("*.json"))
    assert any("release-attention" in e for e in entries)  # read from the installed package, and kept
    table = json.loads(first)
    assert table["transformers"] == release and table["facts_source"].startswith(f"transformers {release}: read")
    shipped = json.loads((SHIPPED / "attention" / f"transformers-{release}.json").read_text())
    assert {r["model_type"]: r for r in shipped["architectures"]}.keys() == {r["model_type"] for r in
                                                                           table["architectures"]}
    by_type = {r["model_type"]: r for r in table["architectures"]}
    # issue 28: the shipped table holds the executed acceptance where it decided; a release read at day 0 is read
    # from its classes (composites included), so cells where the execution found more are exempt here
    accepted = json.loads((SHIPPED / "acceptance" / f"transformers-{release}.json").read_text())
    for row in shipped["architectures"]:  # the installed classes, read again: the same as the generator's table
        got = by_type[row["model_type"]]
        executed = accepted["types"].get(row["model_type"], ["", "", {}])
        reasons = executed[2]
        assert all(got[impl] == row[impl] or impl in reasons for impl in
                   ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")), row["model_type"]
    code, second, err = _advisor(hidden, "matrix", "--format", "json")
    assert code == 0 and err == "" and second == first  # from the cache: the same answer, nothing read again
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*.json")) == entries


def test_a_release_newer_than_everything_known_is_unknown_not_the_newest(hidden: dict[str, str],
                                                                          release: str) -> None:
    newer = f"{Version(release).major}.{Version(release).minor + 1}.0"
    code, out, err = _advisor(hidden, "recommend", "meta-llama/Llama-3.2-1B", "--env",
                              str(ENVS / "a100_80gb_fa2_bnb.json"), "--assume", f"transformers=={newer}",
                              "--format", "json")
    data: dict[str, Any] = json.loads(out)
    assert "facts about it are unknown" in data["facts_source"]
    codes = {f["code"] for f in data["findings"]}
    assert "REL001" in codes and "LIB004" not in codes
    assert "unknown for transformers" in data["attention_support_source"]


def test_doctor_shows_no_kernels_window_warning(hidden: dict[str, str], release: str) -> None:
    code, out, err = _advisor(hidden, "doctor", "meta-llama/Llama-3.2-1B", "--gpu", "H100")
    assert "LIB004" not in out and "kernels>=0.18" not in out
    assert f"Facts: transformers {release}: read from the installed package" in out


def test_a_first_read_shows_a_progress_line_on_a_terminal(hidden: dict[str, str], release: str,
                                                          tmp_path: Path) -> None:
    """A person at a terminal sees why the first run takes seconds; a pipe (CI) gets none (one-line errors)."""
    import pty

    env = {**hidden, "ADVISOR_CACHE_DIR": str(tmp_path / "cache")}
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "advisor", "recommend", "meta-llama/Llama-3.2-1B", "--gpu",
                               "H100", "--format", "json"], stdout=subprocess.PIPE, stderr=follower, env=env,
                              cwd=ROOT, timeout=600, check=False)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert f"advisor: reading the model types and kernel mapping of transformers {release}" in shown.decode()
