"""Issue 14: a config never seen, of a shipped architecture with other sizes, is counted by that model's formula
(advisor.model.param_formula) exactly as the meta-device build counts it, without importing torch or transformers; a
config whose structure differs is refused by the formula and built."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.io import analysis_cache
from advisor.knowledge import load_knowledge
from advisor.knowledge.installed import installed_version
from advisor.model.analysis import _release_value, precomputed
from advisor.model.param_formula import evaluate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {m.hub_id: dict(m.config) for m in load_knowledge().models}


def _formula(hub_id: str) -> dict[str, Any]:
    entries = precomputed().get("formulas", {}).get(hub_id)
    formula = _release_value(entries, installed_version(), nearest=True)
    assert isinstance(formula, dict), f"no formula shipped for {hub_id}: run scripts/precompute_models.py"
    return formula


def _meta(config: dict[str, Any]) -> tuple[int, int, str | None] | None:
    pytest.importorskip("transformers")
    from advisor.model.meta import count_on_meta

    return count_on_meta(copy.deepcopy(config), config["architectures"][0], False)


def _layers(config: dict[str, Any]) -> str:
    return next(k for k in ("num_hidden_layers", "n_layer", "num_layers", "decoder_layers") if k in config)


@pytest.mark.parametrize("hub_id", sorted(SHIPPED))
def test_every_shipped_model_has_a_formula_that_gives_its_own_count(hub_id: str) -> None:
    config = SHIPPED[hub_id]
    assert evaluate(_formula(hub_id), config, config["architectures"][0]) == _meta(config)


VARIANTS = [
    ("meta-llama/Meta-Llama-3-8B", {"vocab_size": 128263}),
    ("meta-llama/Meta-Llama-3-8B", {"num_hidden_layers": 3, "intermediate_size": 5632}),
    ("meta-llama/Meta-Llama-3-8B", {"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 4}),
    ("meta-llama/Llama-2-7b-hf", {"vocab_size": 32001, "max_position_embeddings": 8192}),
    ("mistralai/Mixtral-8x7B-v0.1", {"num_local_experts": 4, "num_hidden_layers": 2}),
    ("tiiuae/falcon-7b", {"num_hidden_layers": 3, "vocab_size": 65030}),
    ("openai-community/gpt2", {"n_layer": 24, "n_embd": 1024, "n_head": 16}),
    ("google-t5/t5-base", {"d_ff": 2048, "num_layers": 6}),
    ("google-bert/bert-base-uncased", {"vocab_size": 30000, "num_hidden_layers": 4}),
    ("Qwen/Qwen2-7B", {"num_hidden_layers": 4, "vocab_size": 151646}),
]


@pytest.mark.parametrize(("hub_id", "change"), VARIANTS, ids=[f"{h.split('/')[1]}-{'-'.join(c)}" for h, c in VARIANTS])
def test_a_relative_with_other_sizes_is_counted_exactly(hub_id: str, change: dict[str, Any]) -> None:
    config = {**SHIPPED[hub_id], **change}
    counted = evaluate(_formula(hub_id), config, config["architectures"][0])
    assert counted is not None
    assert counted == _meta(config)


STRUCTURAL = [
    ("meta-llama/Meta-Llama-3-8B", {"attention_bias": True}),  # new bias parameters
    ("meta-llama/Meta-Llama-3-8B", {"tie_word_embeddings": True}),  # one matrix fewer
    ("meta-llama/Meta-Llama-3-8B", {"hidden_size": 4100}),  # 4100 / 32 heads: the class refuses it
    ("meta-llama/Llama-2-7b-hf", {"hidden_size": 4128, "num_attention_heads": 33}),  # 4128 / 33 heads: as well
    ("tiiuae/falcon-7b", {"num_attention_heads": 32}),  # fused qkv (heads + 2 kv) x head_dim: not a product
    ("meta-llama/Meta-Llama-3-8B", {"some_new_field": 3}),  # a key the formula never saw
]


@pytest.mark.parametrize(("hub_id", "change"), STRUCTURAL, ids=[f"{h.split('/')[1]}-{'-'.join(c)}" for h, c in STRUCTURAL])
def test_a_config_the_formula_cannot_vouch_for_is_refused(hub_id: str, change: dict[str, Any]) -> None:
    config = {**SHIPPED[hub_id], **change}
    assert evaluate(_formula(hub_id), config, config["architectures"][0]) is None


_WRAPPER = """
import json, sys
from advisor.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
sys.stderr.write("\\nIMPORTED " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def _run(cache: Path, folder: Path) -> dict[str, Any]:
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", _WRAPPER, "recommend", str(folder), "--cpu", "--format", "json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    line = [x for x in done.stderr.splitlines() if x.startswith("IMPORTED ")]
    assert line, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(line[-1].removeprefix("IMPORTED "))
    result["report"] = json.loads(done.stdout)
    return result


def test_a_new_relative_is_counted_by_formula(tmp_path: Path) -> None:
    """Issue 14: a new relative's parameters come from the formula, not a meta-device build. Since issue 27 its
    memory figure is simulated (exact over fast: any config not shipped simulates), which imports torch."""
    pytest.importorskip("transformers")
    from advisor.model.analysis import stored_releases

    if installed_version() not in stored_releases():
        pytest.skip("the formulas are shipped for the stored releases only")
    folder = tmp_path / "model"
    folder.mkdir()
    config = {**SHIPPED["meta-llama/Meta-Llama-3-8B"], "vocab_size": 128263, "num_hidden_layers": 30}
    (folder / "config.json").write_text(json.dumps(config))
    result = _run(tmp_path / "cache", folder)
    model = result["report"]["model"]
    assert model["param_count_method"] == "formula" and result["report"]["memory"]["method"] == "simulated"
    assert (model["param_count"], model["quantizable_param_count"]) == _meta(config)[:2]  # type: ignore[index]
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "config.json").write_text(json.dumps({**config, "attention_bias": True}))
    built = _run(tmp_path / "cache", changed)["report"]["model"]  # structure the formula cannot vouch for: built
    assert built["param_count_method"] != "formula"
