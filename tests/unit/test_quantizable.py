"""Issue 17: bitsandbytes quantizes only exact nn.Linear / Conv1D modules in transformers 5.x.

The rule is transformers 5.24.0 `integrations/bitsandbytes.py` line 189:
`if isinstance(module, Conv1D) or type(module) is nn.Linear:` (4.57.6 line 167 was
`if (isinstance(module, (nn.Linear, Conv1D))) and name not in modules_to_not_convert:`). falcon's projections are
`FalconLinear(nn.Linear)` (`models/falcon/modeling_falcon.py` line 60), and Mixtral's experts are the fused
3-D parameters `experts.gate_up_proj` / `experts.down_proj`. Everything here runs the installed transformers.
"""

from __future__ import annotations

import inspect
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from packaging.version import Version

from advisor.knowledge import data_dir
from advisor.knowledge.quantizable_share import (
    BNB_RULE,
    covered_release,
    installed_rule,
    kind_of,
    read_rule,
    rule_at,
    share_table,
    table_releases,
)
from advisor.model.quantizable import LOW_SHARE, at_release, breakdown, share_row
from advisor.model.resolve import _table_share, resolve_model

TF_ROOT = Path(transformers.__file__).parent


def _meta(model_type: str, **overrides: Any) -> Any:
    config = transformers.AutoConfig.for_model(model_type, **overrides)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def test_the_cited_replacement_line_is_the_installed_one() -> None:
    """If transformers moves or changes the rule, BNB_RULE and the table must be regenerated."""
    lines = (TF_ROOT / "integrations" / "bitsandbytes.py").read_text().splitlines()
    if transformers.__version__ == BNB_RULE["transformers"]:
        assert lines[BNB_RULE["line"] - 1].strip() == BNB_RULE["text"]
    assert any(line.strip() == BNB_RULE["text"] for line in lines), "the exact-type rule changed: re-read it"
    for skip in BNB_RULE["skips"]:
        text = (TF_ROOT / skip["file"].removeprefix("transformers/")).read_text().splitlines()
        assert any(line.strip() == skip["text"] for line in text), skip


def test_the_rule_is_read_from_the_installed_release() -> None:
    rule = installed_rule()
    assert rule is not None and rule.release == transformers.__version__
    lines = (TF_ROOT / "integrations" / "bitsandbytes.py").read_text().splitlines()
    assert lines[rule.line - 1].strip() == rule.text
    assert rule.mode == ("exact" if "type(module) is nn.Linear" in rule.text else "isinstance")
    for file, line, text in rule.skips:
        assert (TF_ROOT / file.removeprefix("transformers/")).read_text().splitlines()[line - 1].strip() == text
    stored = rule_at(transformers.__version__)
    assert stored == rule  # the table's rule for the installed release is what its files say now


@pytest.mark.parametrize(("line", "mode"), [
    ("        if (isinstance(module, (nn.Linear, Conv1D))) and name not in modules_to_not_convert:", "isinstance"),
    ("        if (isinstance(module, nn.Linear) or isinstance(module, Conv1D)) and name not in modules_to_not_convert:",
     "isinstance"),
    ("            if isinstance(module, (nn.Linear, Conv1D)):", "isinstance"),
    ("            if isinstance(module, Conv1D) or type(module) is nn.Linear:", "exact"),
], ids=["4.57.6", "4.36.2", "5.0-5.4", "5.5+"])
def test_read_rule_knows_each_form_the_releases_used(tmp_path: Path, line: str, mode: str) -> None:
    """The lines are verbatim from the release wheels (4.57.6:167, 4.36.2:132, 5.4.0:184, 5.24.0:189)."""
    (tmp_path / "integrations").mkdir()
    (tmp_path / "integrations" / "bitsandbytes.py").write_text(f"import torch\n\n\ndef f(module):\n{line}\n")
    rule = read_rule(tmp_path, "x")
    assert (rule.mode, rule.line, rule.text) == (mode, 5, line.strip())


def test_read_rule_refuses_an_unknown_form(tmp_path: Path) -> None:
    (tmp_path / "integrations").mkdir()
    (tmp_path / "integrations" / "bitsandbytes.py").write_text("if issubclass(type(module), nn.Linear):\n")
    with pytest.raises(ValueError, match="no known replacement test"):
        read_rule(tmp_path, "9.9.9")


def test_the_isinstance_rule_replaces_falconlinear_but_not_fused_experts() -> None:
    """4.x / 5.0-5.4 took FalconLinear; fused experts (a 5.x layout) are no nn.Linear under either rule."""
    falcon = _meta("falcon", num_hidden_layers=2, hidden_size=256, num_attention_heads=4, vocab_size=1000)
    exact, loose = breakdown(falcon, "exact"), breakdown(falcon, "isinstance")
    assert exact.quantizable == 0 and loose.linear_subclass == 0
    assert loose.quantizable == exact.linear_subclass > 0
    mixtral = _meta("mixtral", num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=4,
                    num_key_value_heads=2, num_local_experts=4, vocab_size=1000)
    assert breakdown(mixtral, "isinstance").quantizable == breakdown(mixtral, "exact").quantizable
    assert breakdown(mixtral, "isinstance").non_embedding_share < LOW_SHARE


def test_falcon_7b_projections_are_falconlinear_and_none_is_replaced() -> None:
    source = inspect.getsource(transformers.models.falcon.modeling_falcon)
    assert "class FalconLinear(nn.Linear):" in source
    spec = resolve_model("tiiuae/falcon-7b")
    assert spec.source == "shipped" and spec.param_count_method == "meta-device"
    assert spec.quantizable_param_count == 0
    assert spec.quantizable_note == "the projections are FalconLinear, a subclass of nn.Linear"
    assert spec.quantizable_release == transformers.__version__


def test_mixtral_experts_are_fused_and_only_attention_is_replaced() -> None:
    spec = resolve_model("mistralai/Mixtral-8x7B-v0.1")
    assert 46.6e9 < spec.param_count < 46.8e9  # 46.7B, the published size
    share = spec.quantizable_param_count / spec.param_count
    assert 0.02 < share < 0.04  # 32 layers x (4096x4096 q/o + 2 x 4096x1024 k/v) = 1.34B of 46.7B
    assert spec.quantizable_param_count == 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024)
    assert spec.quantizable_note == "the experts are fused 3-D parameters, not nn.Linear modules"


def test_llama_is_almost_all_replaced_and_lm_head_is_skipped() -> None:
    split = breakdown(_meta("llama", num_hidden_layers=2, hidden_size=256, intermediate_size=512, vocab_size=1000,
                            num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False))
    assert split.skipped == ("lm_head",)
    assert split.skipped_linear == 256 * 1000
    assert split.quantizable == 2 * (4 * 256 * 256 + 3 * 256 * 512)
    assert split.non_embedding_share > LOW_SHARE


def test_the_replacement_does_not_depend_on_depth() -> None:
    """benchmarks/h100_quant_proof.sh shrinks falcon-7b to 2 layers: the share of replaced modules is per layer."""
    shallow = breakdown(_meta("falcon", num_hidden_layers=2, hidden_size=4544, num_attention_heads=71, vocab_size=65024))
    deep = breakdown(_meta("falcon", num_hidden_layers=32, hidden_size=4544, num_attention_heads=71, vocab_size=65024))
    assert shallow.quantizable == deep.quantizable == 0
    assert shallow.subclasses == deep.subclasses == ("FalconLinear",)
    per_layer = (deep.linear_subclass - shallow.linear_subclass) / 30
    assert shallow.linear_subclass == 2 * per_layer


def _installed_rows(key: str) -> dict[str, Any]:
    table = share_table()
    from advisor.knowledge.quantizable_share import value_at

    out = {t: value_at(runs, transformers.__version__, table["releases"]) for t, runs in table[key].items()}
    return {t: v for t, v in out.items() if v is not None}


def test_table_covers_every_model_type_of_the_installed_release() -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    assert transformers.__version__ in table_releases()
    rows, not_built = _installed_rows("model_types"), _installed_rows("not_built")
    assert set(rows) | set(not_built) == set(CONFIG_MAPPING_NAMES)
    assert not set(rows) & set(not_built)
    assert len(rows) > 500
    assert all(reason for reason in not_built.values())


@pytest.mark.parametrize("model_type", ["falcon", "mixtral", "llama", "qwen3_moe"])
def test_table_rows_match_a_fresh_build(model_type: str) -> None:
    row = share_row(model_type, transformers.__version__)
    assert row is not None
    name = _installed_rows("classes")[model_type]
    with torch.device("meta"):
        model = getattr(transformers, name)(transformers.AutoConfig.for_model(model_type))
    split = breakdown(model)
    assert row.share == pytest.approx(split.share, abs=1e-4)
    assert row.params == split.total
    assert (row.reason is not None) == (split.non_embedding_share < LOW_SHARE)


def test_table_rows_name_the_reason() -> None:
    rows = _installed_rows("model_types")
    assert rows["falcon"][3:] == ["linear-subclass", "the projections are FalconLinear, a subclass of nn.Linear"]
    assert rows["mixtral"][3] == "fused-experts" and rows["gpt_oss"][3] == "fused-experts"
    assert rows["llama"][3] is None
    assert kind_of(rows["falcon"][4]) == "linear-subclass"
    assert kind_of(rows["mixtral"][4]) == "fused-experts"


def test_without_torch_the_table_share_replaces_the_closed_form_guess() -> None:
    """The closed-form estimate counts every decoder matrix; for falcon the table says none is replaced."""
    total, quantizable, note = _table_share("falcon", 7_000_000_000, 6_500_000_000)
    assert (total, quantizable) == (7_000_000_000, 0)
    assert note is not None and "FalconLinear" in note
    assert _table_share("llama", 100, 90) == (100, 90, None)
    assert _table_share("no-such-type", 100, 90) == (100, 90, None)


def test_table_is_valid_json_with_sources() -> None:
    raw = json.loads((data_dir() / "quantizable_share.json").read_text())
    assert raw["schema_version"] == 2
    assert raw["generated_by"] == "scripts/generate_quantizable_share.py"
    assert raw["releases"] == sorted(raw["releases"], key=Version) and set(raw["rules"]) == set(raw["releases"])
    for release, rule in raw["rules"].items():
        assert rule["file"] == "transformers/integrations/bitsandbytes.py" and rule["line"] > 0, release
        assert rule["mode"] == ("exact" if "type(module) is nn.Linear" in rule["text"] else "isinstance")
    for runs in raw["model_types"].values():  # run-length: a run never repeats the one before it
        assert all(a[1] != b[1] for a, b in itertools.pairwise(runs))
        assert [r[0] for r in runs] == sorted((r[0] for r in runs), key=Version)


# --- the stored releases (issue 17 follow-up) ----------------------------------------------------------------


def test_the_table_covers_the_h100_release_and_a_4x_release() -> None:
    """5.17.0 is the H100 box's transformers; 4.57.6 the last 4.x."""
    assert {"4.57.6", "5.17.0", transformers.__version__} <= set(table_releases())


def test_the_rule_per_release_cites_its_own_line() -> None:
    """Read from each release's wheel: 4.57.6 line 167 (isinstance), 5.17.0 line 189 (exact type)."""
    old, new = rule_at("4.57.6"), rule_at("5.17.0")
    assert old is not None and new is not None
    assert (old.mode, old.line) == ("isinstance", 167)
    assert old.text == "if (isinstance(module, (nn.Linear, Conv1D))) and name not in modules_to_not_convert:"
    assert (new.mode, new.line, new.text) == ("exact", 189, "if isinstance(module, Conv1D) or type(module) is nn.Linear:")
    assert new.cite() == "transformers 5.17.0 transformers/integrations/bitsandbytes.py:189"


def test_falcon_is_quantizable_under_4x_and_not_under_5x() -> None:
    four, five = share_row("falcon", "4.57.6"), share_row("falcon", "5.17.0")
    assert four is not None and five is not None
    assert four.reason is None and four.non_embedding_share > 0.9
    assert five.share == 0.0 and five.kind == "linear-subclass"


def test_4x_mixture_of_experts_were_per_expert_linears() -> None:
    """4.57.6 built Mixtral's experts as nn.Linear modules (MixtralBlockSparseTop2MLP): bitsandbytes took them."""
    four, now = share_row("mixtral", "4.57.6"), share_row("mixtral", transformers.__version__)
    assert four is not None and now is not None
    assert four.reason is None and four.non_embedding_share > 0.9
    assert now.kind == "fused-experts"


def test_identical_rows_are_stored_once() -> None:
    """Run-length: one run per change along the releases, so a row unchanged since 4.57.6 is stored once."""
    from advisor.knowledge.quantizable_share import value_at

    releases = table_releases()
    for key in ("model_types", "classes", "not_built"):
        for model_type, runs in share_table()[key].items():
            values = [value_at(runs, r, releases) for r in releases]
            assert len(runs) == 1 + sum(a != b for a, b in itertools.pairwise(values)), (key, model_type)
    assert len(share_table()["model_types"]["gpt2"]) == 1  # same share in every stored release


def test_a_patch_stands_for_its_minor_and_an_unread_minor_is_not_covered() -> None:
    assert covered_release("5.17.0") == ("5.17.0", "exact")
    assert covered_release("5.17.3") == ("5.17.0", "same_minor")
    assert covered_release("4.20.0") is None
    assert covered_release("not-a-version") is None
    assert covered_release(None) is None


def test_at_release_applies_the_target_release_share() -> None:
    spec = resolve_model("tiiuae/falcon-7b")
    assert spec.quantizable_param_count == 0
    four = at_release(spec, "4.57.6")
    row = share_row("falcon", "4.57.6")
    assert row is not None
    assert four.quantizable_release == "4.57.6" and four.quantizable_note is None
    assert four.quantizable_param_count == int(spec.param_count * row.share)
    assert at_release(spec, "5.17.0").quantizable_param_count == 0  # same row as the installed release: exact count
    assert at_release(spec, "4.20.0") == spec  # not covered: unchanged (QUANT007 says so)


def test_generator_fold_and_unfold_are_inverse() -> None:
    """scripts/generate_quantizable_share.py keeps releases it does not re-read by unfolding the stored table."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "generate_quantizable_share.py"
    spec = importlib.util.spec_from_file_location("generate_quantizable_share", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rule = {"mode": "exact", "file": "transformers/integrations/bitsandbytes.py", "line": 1, "text": "x", "skips": []}
    row = [0.5, 0.5, 10, "fused-experts", "the experts are fused 3-D parameters, not nn.Linear modules"]
    readings = {
        "4.57.6": {"release": "4.57.6", "rule": {**rule, "mode": "isinstance"}, "rows": {"a": [1.0, 1.0, 10, None, None]},
                   "classes": {"a": "A"}, "not_built": {"b": "config: boom"}},
        "5.17.0": {"release": "5.17.0", "rule": rule, "rows": {"a": row, "b": row}, "classes": {"a": "A", "b": "B"},
                   "not_built": {}},
        "5.24.0": {"release": "5.24.0", "rule": rule, "rows": {"a": row, "b": row}, "classes": {"a": "A", "b": "B"},
                   "not_built": {}},
    }
    table = script.merge(readings)
    assert table["releases"] == ["4.57.6", "5.17.0", "5.24.0"]
    assert table["model_types"]["a"] == [["4.57.6", [1.0, 1.0, 10, None, None]], ["5.17.0", row]]
    assert table["model_types"]["b"] == [["4.57.6", None], ["5.17.0", row]]
    assert table["classes"]["a"] == [["4.57.6", "A"]]  # unchanged: one run
    assert script.explode(json.loads(script._compact(table))) == readings
