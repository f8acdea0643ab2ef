"""Issue 14 follow-up: whether a memory figure is simulated or estimated depends on explicit inputs only
(--simulate, whether the model was counted on the meta device now, the cache), never on what the process
imported before; and only the candidates whose answer a simulation can change are simulated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.estimate.adapter import may_simulate
from advisor.estimate.selection import near_limit
from advisor.io import analysis_cache
from advisor.model.analysis import _release_value, counts_and_origin
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.target import load_environment

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"

# The real CLI in a fresh interpreter; PRELOAD=1 imports transformers first, as an earlier caller in the same
# process would have (the old rule simulated then, and only then).
_WRAPPER = """
import os, sys
if os.environ.get("PRELOAD") == "1":
    import transformers  # noqa: F401
from advisor.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _recommend(cache: Path, preload: bool, *argv: str) -> dict[str, Any]:
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache), "PRELOAD": "1" if preload else "0"}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", _WRAPPER, "recommend", *argv, "--format", "json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _methods(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    options = ([report["chosen"]] if report.get("chosen") else []) + list(report.get("alternatives") or [])
    return [(o["label"], o["memory"]["method"], o["memory"]["total_bytes"]) for o in options]


def test_the_memory_method_does_not_depend_on_what_was_imported_before(tmp_path: Path) -> None:
    argv = ("meta-llama/Meta-Llama-3-8B", "--env", str(ENVS / "t4_bnb_fa2.json"))
    plain = _recommend(tmp_path / "a", False, *argv)
    preloaded = _recommend(tmp_path / "b", True, *argv)
    assert _methods(plain) and _methods(preloaded) == _methods(plain)
    assert {m for _, m, _ in _methods(plain)} == {"estimated"}  # shipped: counted without transformers


def test_simulation_follows_the_flag_and_the_count_not_the_import() -> None:
    pytest.importorskip("transformers")  # imported here: the old rule would now simulate everything
    shipped = resolve_model("meta-llama/Llama-3.2-1B")
    assert shipped.analysed_now is False and not may_simulate(shipped)
    assert may_simulate(shipped, always_simulate=True)
    assert may_simulate(shipped.model_copy(update={"analysed_now": True}))


def test_a_count_reports_whether_it_was_computed_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "vocab_size": 77}
    calls: list[int] = []

    def count(*_: Any) -> tuple[int, int, None]:
        calls.append(1)
        return 10, 8, None

    assert counts_and_origin(config, "LlamaForCausalLM", False, count) == ((10, 8, None), "computed")
    assert counts_and_origin(config, "LlamaForCausalLM", False, count) == ((10, 8, None), "cache")  # cached now
    assert len(calls) == 1


def test_only_the_chosen_and_near_limit_candidates_are_simulated() -> None:
    pytest.importorskip("transformers")
    model = resolve_model("meta-llama/Llama-3.2-1B")
    env = load_environment(ENVS / "t4_bnb_fa2.json")
    # batch 3: a shape no shipped formula holds (they cover batch 1 on every main target), so figures need a run
    plan = make_plan(model, env, PlanRequest(seq_len=1024, batch=3, simulate=True))
    assert plan.chosen is not None and plan.chosen.memory.method == "simulated"
    estimated = [o for o in plan.alternatives if o.memory.method == "estimated"]
    assert estimated, "every candidate was simulated"
    assert all(not near_limit(o.memory) for o in estimated)
    # the same plan without --simulate and with an empty cache: every figure closed-form, and labelled so
    plain = make_plan(model, env, PlanRequest(seq_len=1024, batch=3, cache=False))
    assert {o.memory.method for o in [plain.chosen, *plain.alternatives] if o is not None} == {"estimated"}


def test_stored_values_are_picked_per_release() -> None:
    entries = [{"releases": ["5.17.0", "5.18.0"], "value": 1}, {"releases": ["5.24.0"], "value": 2}]
    assert _release_value(entries, "5.18.0", nearest=False) == 1
    assert _release_value(entries, "5.24.0", nearest=False) == 2
    assert _release_value(entries, "5.20.0", nearest=False) is None  # flags: this release or nothing
    assert _release_value(entries, "5.20.0", nearest=True) == 1  # counts: the nearest release below
    assert _release_value(entries, "5.10.0", nearest=True) == 1  # else the oldest above
    assert _release_value(entries, "6.0.0", nearest=True) == 2
    assert _release_value("garbage", "5.17.0", nearest=True) is None


def test_the_cli_flags_reach_the_request(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--simulate and --no-cache travel as request fields (issue 26): the real CLI, a shipped model."""
    pytest.importorskip("transformers")
    cache = tmp_path / "cache"
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(cache))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    argv = ("recommend", "meta-llama/Llama-3.2-1B", "--env", str(ENVS / "t4_bnb_fa2.json"), "--format", "json",
            "--batch", "3")  # no shipped formula holds batch 3: the figure needs a run

    def chosen(*flags: str) -> str:
        code, out, err = cli(*argv, *flags)
        assert code in (0, 1), err
        return str(json.loads(out)["chosen"]["memory"]["method"])

    def written() -> list[Path]:
        return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []

    assert chosen("--no-cache") == "estimated"
    assert chosen("--simulate", "--no-cache") == "simulated"
    assert written() == []  # --no-cache: nothing read, nothing written
    assert chosen("--simulate") == "simulated"
    assert any(p.parent.name == "memory-sim" for p in written())  # the cache is on again: the simulation is kept
