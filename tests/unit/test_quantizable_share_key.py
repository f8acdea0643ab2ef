"""Issue 17: the structure key that lets the quantizable-share table reuse a row across releases.

A key must change whenever something that decides a type's module tree changes (its modeling file, a sibling
model it imports, the shared definitions it imports, the replacement rule) and must not change for files the
type never reads. The trees are small synthetic `transformers/` folders written to tmp_path; the real wheels
are checked by scripts/check_share_reuse.py (docs/quantizable-share.md), too heavy for CI.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


key = _script("quantizable_share_key")

FILES = {
    "models/auto/configuration_auto.py": 'CONFIG_MAPPING_NAMES = OrderedDict(\n    [\n        ("llama", "LlamaConfig"),\n'
                                         '        ("llava", "LlavaConfig"),\n        ("gpt2", "GPT2Config"),\n'
                                         '        ("bert", "BertConfig"),\n    ]\n)\n',
    "models/auto/modeling_auto.py": 'MODEL_FOR_CAUSAL_LM_MAPPING_NAMES = OrderedDict(\n    [\n'
                                    '        ("llama", "LlamaForCausalLM"),\n        ("gpt2", "GPT2LMHeadModel"),\n    ]\n)\n',
    "models/llama/configuration_llama.py": 'from ...configuration_utils import PretrainedConfig\n\n\n'
                                           'class LlamaConfig(PretrainedConfig):\n    model_type = "llama"\n',
    "models/llama/modeling_llama.py": 'from torch import nn\n\nfrom ...activations import ACT2FN\n'
                                      'from ...modeling_utils import PreTrainedModel\n'
                                      'from .configuration_llama import LlamaConfig\n\n\n'
                                      'class LlamaMLP(nn.Module):\n    """The MLP."""\n\n'
                                      '    def __init__(self, config):\n        self.up = nn.Linear(4, 8)\n',
    "models/gpt2/configuration_gpt2.py": 'class GPT2Config(PretrainedConfig):\n    model_type = "gpt2"\n',
    "models/gpt2/modeling_gpt2.py": 'from ...pytorch_utils import Conv1D\nfrom ..llama.modeling_llama import LlamaMLP\n\n\n'
                                    'class GPT2MLP:\n    def __init__(self):\n        self.c_fc = Conv1D(8, 4)\n',
    "models/llava/configuration_llava.py": 'from ..auto import CONFIG_MAPPING\n\n\nclass LlavaConfig(PretrainedConfig):\n'
                                           '    def __init__(self):\n        self.text_config = CONFIG_MAPPING["llama"]()\n',
    "models/llava/modeling_llava.py": 'from ..auto import AutoModel\n\n\nclass LlavaModel:\n    pass\n',
    "models/bert/configuration_bert.py": 'class BertConfig(PretrainedConfig):\n    model_type = "bert"\n',
    "models/bert/modeling_bert.py": 'from torch import nn\n\n\nclass BertLayer(nn.Module):\n    pass\n',
    "activations.py": 'from torch import nn\n\n\nclass GELU(nn.Module):\n    pass\n\n\nclass Unused(nn.Module):\n'
                      '    pass\n\n\nACT2CLS = {"gelu": GELU}\nACT2FN = ACT2CLS\n',
    "pytorch_utils.py": 'from torch import nn\n\n\nclass Conv1D(nn.Module):\n    def __init__(self, nf, nx):\n'
                        '        self.nf = nf\n\n\ndef prune_layer():\n    pass\n',
    "modeling_utils.py": 'class PreTrainedModel:\n    def tie_weights(self):\n        pass\n\n'
                         '    def generate_docs(self):\n        pass\n',
    "configuration_utils.py": 'class PretrainedConfig:\n    tie_word_embeddings = True\n',
    "integrations/bitsandbytes.py": 'def replace(module):\n    if isinstance(module, (nn.Linear, Conv1D)):\n'
                                    '        pass\n\n\ndef get_keys_to_not_convert(model):\n    return ["lm_head"]\n',
    "utils/generic.py": 'def helper():\n    pass\n',
}


def _keys(tmp_path: Path, changes: dict[str, str] | None = None, mode: str = "isinstance") -> dict[str, str | None]:
    root = tmp_path / "transformers"
    for rel, text in {**FILES, **(changes or {})}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    files = key.read_folder(root)
    return key.structure_keys(files, key.rule_digest(mode, files))


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str | None]:
    return _keys(tmp_path / "base")


def _changed(base: dict[str, str | None], other: dict[str, str | None]) -> set[str]:
    return {t for t in base if base[t] != other[t]}


def test_every_type_of_the_mapping_gets_a_key(base: dict[str, str | None]) -> None:
    assert set(base) == {"llama", "llava", "gpt2", "bert"}
    assert all(base.values()) and len(set(base.values())) == 4


def test_the_same_tree_gives_the_same_keys(tmp_path: Path, base: dict[str, str | None]) -> None:
    assert _keys(tmp_path / "again") == base


def test_a_modeling_change_renews_the_type_and_every_importer(tmp_path: Path, base: dict[str, str | None]) -> None:
    changed = FILES["models/llama/modeling_llama.py"].replace("nn.Linear(4, 8)", "nn.Linear(4, 16)")
    other = _keys(tmp_path / "x", {"models/llama/modeling_llama.py": changed})
    # gpt2 imports LlamaMLP; llava's default text config is llama (a composite through ..auto).
    assert _changed(base, other) == {"llama", "gpt2", "llava"}


def test_a_docstring_or_comment_change_keeps_every_key(tmp_path: Path, base: dict[str, str | None]) -> None:
    changed = FILES["models/llama/modeling_llama.py"].replace('"""The MLP."""', '"""The MLP, reworded."""\n    # note')
    assert _keys(tmp_path / "x", {"models/llama/modeling_llama.py": changed}) == base


def test_an_imported_shared_definition_renews_only_its_importers(tmp_path: Path, base: dict[str, str | None]) -> None:
    changed = FILES["pytorch_utils.py"].replace("self.nf = nf", "self.nf = nf * 2")
    assert _changed(base, _keys(tmp_path / "x", {"pytorch_utils.py": changed})) == {"gpt2"}
    # ACT2FN reaches GELU through ACT2CLS: a change there counts, one in an unused class does not.
    gelu = FILES["activations.py"].replace("class GELU(nn.Module):\n    pass", "class GELU(nn.Module):\n    x = 1")
    assert _changed(base, _keys(tmp_path / "y", {"activations.py": gelu})) == {"llama", "gpt2", "llava"}
    unused = FILES["activations.py"].replace("class Unused(nn.Module):\n    pass", "class Unused(nn.Module):\n    x = 1")
    assert _keys(tmp_path / "z", {"activations.py": unused}) == base


def test_unrelated_files_keep_every_key(tmp_path: Path, base: dict[str, str | None]) -> None:
    other = _keys(tmp_path / "x", {
        "models/bert/modeling_bert.py": FILES["models/bert/modeling_bert.py"] + "\n\nclass BertMore:\n    pass\n",
        "utils/generic.py": "def helper():\n    return 1\n",
        "modeling_utils.py": FILES["modeling_utils.py"].replace("def generate_docs(self):\n        pass",
                                                                "def generate_docs(self):\n        return 1"),
        "models/newmodel/modeling_newmodel.py": "class New:\n    pass\n",
    })
    assert _changed(base, other) == {"bert"}


def test_weight_tying_and_the_rule_renew_every_key(tmp_path: Path, base: dict[str, str | None]) -> None:
    tie = FILES["modeling_utils.py"].replace("def tie_weights(self):\n        pass", "def tie_weights(self):\n        return 1")
    assert _changed(base, _keys(tmp_path / "x", {"modeling_utils.py": tie})) == set(base)
    assert _changed(base, _keys(tmp_path / "y", mode="exact")) == set(base)
    skip = FILES["integrations/bitsandbytes.py"].replace('return ["lm_head"]', 'return ["lm_head", "head"]')
    assert _changed(base, _keys(tmp_path / "z", {"integrations/bitsandbytes.py": skip})) == set(base)


def test_a_head_class_change_in_the_auto_mapping_renews_that_type(tmp_path: Path, base: dict[str, str | None]) -> None:
    auto = FILES["models/auto/modeling_auto.py"].replace('"GPT2LMHeadModel"', '"GPT2ForCausalLM"')
    assert _changed(base, _keys(tmp_path / "x", {"models/auto/modeling_auto.py": auto})) == {"gpt2"}


def test_the_mapping_is_read_in_both_forms() -> None:
    files = {"models/auto/configuration_auto.py": b'X = OrderedDict([("llama", "LlamaConfig")])\n',
             "models/auto/auto_mappings.py": b'CONFIG_MAPPING_NAMES = {"gpt-oss": "GptOssConfig"}\n'}
    assert key.config_mapping(files) == {"llama": "LlamaConfig", "gpt-oss": "GptOssConfig"}


def test_the_table_covers_every_stored_release() -> None:
    """After issue 17 the table has a row set for each release of data/release_constraints.json, and records
    how many types each release built and reused."""
    data = Path(__file__).resolve().parents[2] / "data"
    stored = json.loads((data / "release_constraints.json").read_text(encoding="utf-8"))["releases"]
    table = json.loads((data / "quantizable_share.json").read_text(encoding="utf-8"))
    counts = table["reuse"]["releases"]
    assert set(counts) == set(table["releases"]) == set(table["rules"]) and table["reuse"]["key"].startswith("structure")
    assert any(c["reused"] > 0 for c in counts.values())
    assert all(c["built"] + c["reused"] > 0 for c in counts.values())
    assert set(table["releases"]) == set(stored)


def test_types_of_one_directory_get_their_own_keys(tmp_path: Path) -> None:
    """aimv2 / aimv2_text_model / aimv2_vision_model share every file: the key must still tell them apart (the
    check against a full 5.10.4 reading caught rows of the vision model given to the others)."""
    auto = FILES["models/auto/configuration_auto.py"].replace('("bert", "BertConfig"),',
                                                              '("bert", "BertConfig"),\n        ("bert.text", "BertTextConfig"),')
    config = FILES["models/bert/configuration_bert.py"] + '\n\nclass BertTextConfig(PretrainedConfig):\n    model_type = "bert.text"\n'
    keys = _keys(tmp_path, {"models/auto/configuration_auto.py": auto, "models/bert/configuration_bert.py": config})
    assert keys["bert"] and keys["bert.text"] and keys["bert"] != keys["bert.text"]
