"""The analysis cache (issue 14): keyed by content and transformers release, never a crash, rebuilt when corrupt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version
from advisor.model.analysis import cached_counts, count_key, counting_version

TF = "5.24.0"
CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(folder))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    return folder


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_round_trip_and_key_order_does_not_matter(cache: Path) -> None:
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    reordered = dict(reversed(list(CONFIG.items())))
    assert analysis_cache.get("param-count", reordered, transformers=TF) == [10, 8]
    assert [p.suffix for p in _entries(cache)] == [".json"]


@pytest.mark.parametrize(
    "change",
    [
        {"content": {**CONFIG, "hidden_size": 128}},
        {"transformers": "5.17.0"},
        {"transformers": None},
        {"extra": "counting-v2"},
        {"kind": "attention-support"},
    ],
    ids=["config-content", "transformers-version", "no-transformers", "extra-key", "kind"],
)
def test_any_part_of_the_key_changing_is_a_miss(cache: Path, change: dict[str, Any]) -> None:
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF, extra="")
    key = {"kind": "param-count", "content": CONFIG, "transformers": TF, "extra": ""} | change
    assert analysis_cache.get(key["kind"], key["content"], transformers=key["transformers"], extra=key["extra"]) is None


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b"\xff\xfe\x00binary", b"[1, 2]", b'{"key": {"kind": "other"}, "value": 1}', b'{"value": 3}'],
    ids=["empty", "truncated", "binary", "not-an-entry", "foreign-key", "no-key"],
)
def test_a_corrupt_entry_is_a_miss_and_is_rebuilt(cache: Path, garbage: bytes) -> None:
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    (entry,) = _entries(cache)
    entry.write_bytes(garbage)
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) is None
    assert not entry.exists()  # discarded, not left to fail again
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) == [10, 8]


def test_a_file_where_the_cache_folder_belongs_is_never_replaced(cache: Path) -> None:
    """Issue 25: it was deleted and a folder made in its place; the library now leaves it (the CLI refuses it)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a folder")
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) is None
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    assert cache.is_file() and cache.read_text() == "not a folder"
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) is None


def test_an_unwritable_cache_is_silently_skipped(cache: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through permissions")
    cache.mkdir(parents=True)
    cache.chmod(0o500)
    try:
        analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
        assert analysis_cache.get("param-count", CONFIG, transformers=TF) is None
    finally:
        cache.chmod(0o700)


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_the_env_switch_turns_the_cache_off(cache: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    monkeypatch.setenv(analysis_cache.NO_CACHE_ENV, value)
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) is None
    analysis_cache.put("param-count", {**CONFIG, "x": 1}, [1, 1], transformers=TF)
    assert len(_entries(cache)) == 1


def test_use_false_neither_reads_nor_writes(cache: Path) -> None:
    analysis_cache.put("param-count", CONFIG, [10, 8], transformers=TF)
    assert analysis_cache.get("param-count", CONFIG, transformers=TF, use=False) is None
    analysis_cache.put("param-count", {**CONFIG, "x": 1}, [1, 1], transformers=TF, use=False)
    assert analysis_cache.cached("param-count", lambda n: [n, n], 3, transformers=TF, use=False) == [3, 3]
    assert len(_entries(cache)) == 1
    assert analysis_cache.get("param-count", CONFIG, transformers=TF) == [10, 8]


def test_no_context_switch_is_left() -> None:
    """Issue 26: --no-cache travels as a parameter; a process-wide or context switch would be hidden state."""
    assert not hasattr(analysis_cache, "disabled") and not hasattr(analysis_cache, "_off")


def test_a_bad_kind_is_a_programming_error(cache: Path) -> None:
    with pytest.raises(ValueError, match="cache kind"):
        analysis_cache.put("../escape", CONFIG, 1, transformers=TF)


_WRITER = """
import sys
from advisor.io import analysis_cache
for i in range(40):
    analysis_cache.put("param-count", {"model_type": "llama", "n": i % 4}, [i % 4, int(sys.argv[1])], transformers="5.24.0")
"""


def test_concurrent_writers_leave_only_whole_entries(cache: Path) -> None:
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)}
    root = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(n)], cwd=root, env=env) for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    files = _entries(cache)
    assert len(files) == 4 and all(not p.name.endswith(".tmp") for p in files)
    for n in range(4):
        value = analysis_cache.get("param-count", {"model_type": "llama", "n": n}, transformers="5.24.0")
        assert value is not None and value[0] == n and value[1] in range(4)
    assert all(json.loads(p.read_text())["key"]["kind"] == "param-count" for p in files)


class _Recorder:
    """The real meta-device count, recording how often it had to run."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, config: dict[str, Any], architecture: str | None, trust: bool) -> tuple[int, int] | None:
        from advisor.model.meta import count_on_meta

        self.calls += 1
        return count_on_meta(config, architecture, trust)


TINY = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 101,
}


def test_counts_are_computed_once_then_served_from_the_cache(cache: Path) -> None:
    pytest.importorskip("transformers")
    count = _Recorder()
    first = cached_counts(TINY, "LlamaForCausalLM", False, count)
    assert first is not None and first[0] > 0 and count.calls == 1
    assert cached_counts(TINY, "LlamaForCausalLM", False, count) == first and count.calls == 1
    assert cached_counts({**TINY, "transformers_version": "4.0"}, "LlamaForCausalLM", False, count) == first
    assert count.calls == 1  # bookkeeping fields do not change a count
    bigger = cached_counts({**TINY, "vocab_size": 202}, "LlamaForCausalLM", False, count)
    assert count.calls == 2 and bigger is not None and bigger[0] > first[0]


def test_counts_cached_under_another_transformers_release_are_not_served(cache: Path) -> None:
    pytest.importorskip("transformers")
    key = count_key(TINY, "LlamaForCausalLM", False)
    analysis_cache.put("param-count", key, [7, 7, None], transformers="0.0.1", extra=counting_version())
    analysis_cache.put("param-count", key, [9, 9, None], transformers=installed_version(), extra="old")
    count = _Recorder()
    counted = cached_counts(TINY, "LlamaForCausalLM", False, count)
    assert count.calls == 1 and counted not in ((7, 7, None), (9, 9, None))
    analysis_cache.put("param-count", key, [5, 4, None], transformers=installed_version(),
                       extra=counting_version())
    assert cached_counts(TINY, "LlamaForCausalLM", False, count) == (5, 4, None) and count.calls == 1
