"""Issue 17: bitsandbytes quantizes only exact nn.Linear / Conv1D modules in transformers 5.x.

The rule is transformers 5.24.0 `integrations/bitsandbytes.py` line 189:
`if isinstance(module, Conv1D) or type(module) is nn.Linear:` (4.57.6 line 167 was
`if (isinstance(module, (nn.Linear, Conv1D))) and name not in modules_to_not_convert:`). falcon's projections are
`FalconLinear(nn.Linear)` (`models/falcon/modeling_falcon.py` line 60), and Mixtral's experts are the fused
3-D parameters `experts.gate_up_proj` / `experts.down_proj`. Everything here runs the installed transformers.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from advisor.knowledge import data_dir
from advisor.model import _table_share, resolve_model
from advisor.quantizable import BNB_RULE, LOW_SHARE, breakdown, kind_of, share_row, share_table

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


def test_table_covers_every_model_type_of_the_installed_release() -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    table = share_table()
    assert table["transformers"] == transformers.__version__
    accounted = set(table["model_types"]) | set(table["not_built"])
    assert accounted == set(CONFIG_MAPPING_NAMES)
    assert len(table["model_types"]) > 500
    assert all(reason for reason in table["not_built"].values())


@pytest.mark.parametrize("model_type", ["falcon", "mixtral", "llama", "qwen3_moe"])
def test_table_rows_match_a_fresh_build(model_type: str) -> None:
    row = share_row(model_type)
    assert row is not None
    name = share_table()["classes"][model_type]
    with torch.device("meta"):
        model = getattr(transformers, name)(transformers.AutoConfig.for_model(model_type))
    split = breakdown(model)
    assert row.share == pytest.approx(split.share, abs=1e-4)
    assert row.params == split.total
    assert (row.reason is not None) == (split.non_embedding_share < LOW_SHARE)


def test_table_rows_name_the_reason() -> None:
    rows = share_table()["model_types"]
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
    assert raw["rule"]["file"] == "transformers/integrations/bitsandbytes.py"
    assert raw["generated_by"] == "scripts/generate_quantizable_share.py"
