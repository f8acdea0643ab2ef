"""Issue 17 item 4, defect 2: every emitted quantization_config must load, and load as the emitted Python.

On the H200 (docs/gpu/quant-methods/smoke-falcon7b-4l-hqq.json) `--quantize hqq-4bit` failed at load with
`KeyError: 'quant_config'`: the plan emitted `{"quant_method": "hqq", "nbits": 4, "group_size": 64}`, but
from_pretrained reads a dict through `AutoQuantizationConfig.from_dict` (quantizers/auto.py `from_config`),
and `HqqConfig.from_dict` takes only `config["quant_config"]` and `config["skip_modules"]`, the serialised form.

Per method candidate: the emitted dict, read by transformers' own `AutoQuantizationConfig.from_dict`, must give
the same `to_dict()` as the emitted snippet's constructor (`candidate.python`), and `advisor.plan.emit.to_kwargs`
(the smoke worker's reader) must build that object. The config classes of quanto, fine-grained FP8 and FBGEMM
FP8 build without their libraries; `HqqConfig.__init__` raises ImportError without `hqq` (not in CI: its sdist
builds CUDA extensions), so without hqq the dict is checked against the keys `HqqConfig.from_dict` and
`to_dict` use in the installed transformers' source, and the full round trip runs where hqq is installed
(it passed with hqq 0.2.8.post1 on this machine, under PYTHONPATH, at the time of writing).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest
import transformers
from transformers.quantizers.auto import AutoQuantizationConfig
from transformers.utils import is_hqq_available

from advisor.candidate import Candidate
from advisor.knowledge.quant_methods import METHOD_QUANTIZATIONS, load_methods
from advisor.plan.emit import from_pretrained_json, quantization_of, to_kwargs


def _candidate(key: str) -> Any:
    method = next(m for m in load_methods() if m.candidate and m.candidate.key == key)
    assert method.candidate is not None
    return method.candidate


def _emitted(key: str) -> dict[str, Any]:
    candidate = Candidate(attn="sdpa", dtype="bfloat16", quantization=key)  # type: ignore[arg-type]
    kwargs = from_pretrained_json(candidate, transformers_version=transformers.__version__)
    assert quantization_of(kwargs) == key
    return dict(kwargs["quantization_config"])


def _needs_library(key: str) -> bool:
    return key == "hqq-4bit" and not is_hqq_available()


@pytest.mark.parametrize("key", METHOD_QUANTIZATIONS)
def test_emitted_dict_reads_back_to_the_emitted_python(key: str) -> None:
    if _needs_library(key):
        pytest.skip("HqqConfig() needs hqq; test_hqq_dict_has_the_keys_from_dict_reads checks the shape")
    emitted = _emitted(key)
    from_json = AutoQuantizationConfig.from_dict(dict(emitted))
    python = _candidate(key).python  # `HqqConfig(nbits=4, group_size=64)`: a transformers class, called
    call = ast.parse(python, mode="eval").body
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
    namespace = {call.func.id: getattr(transformers, call.func.id)}
    from_python = eval(python, namespace)  # our own table's constructor call, one transformers name in scope
    assert type(from_json) is type(from_python)
    assert from_json.to_dict() == from_python.to_dict()
    live = to_kwargs({"quantization_config": emitted})["quantization_config"]  # what the smoke worker passes
    assert type(live) is type(from_python) and live.to_dict() == from_python.to_dict()


def _subscript_keys(function: Any) -> set[str]:
    """The string keys a function reads as `config["..."]`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {n.slice.value for n in ast.walk(tree)
            if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str)}


def _returned_keys(function: Any) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    ret = next(n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, ast.Dict))
    assert isinstance(ret.value, ast.Dict)
    return {k.value for k in ret.value.keys if isinstance(k, ast.Constant)}


def test_hqq_dict_has_the_keys_from_dict_reads() -> None:
    """Without hqq: the emitted dict is HqqConfig's serialised form, by the installed transformers' source."""
    emitted = _emitted("hqq-4bit")
    reads = _subscript_keys(transformers.HqqConfig.from_dict)
    assert reads == {"quant_config", "skip_modules"}  # a change here in a new release must fail this test
    assert reads <= set(emitted)
    assert set(emitted) == _returned_keys(transformers.HqqConfig.to_dict)
    weight = emitted["quant_config"]["weight_quant_params"]
    assert (weight["nbits"], weight["group_size"], weight["axis"]) == (4, 64, 1)  # HqqConfig(nbits=4, group_size=64)


def test_the_flat_hqq_mapping_fails_as_on_the_h200() -> None:
    """The old emit, read the way from_pretrained reads it, raises before any weight loads."""
    if not is_hqq_available():
        with pytest.raises(ImportError, match="HQQ"):  # HqqConfig() itself needs hqq
            AutoQuantizationConfig.from_dict({"quant_method": "hqq", "nbits": 4, "group_size": 64})
        return
    with pytest.raises(KeyError, match="quant_config"):
        AutoQuantizationConfig.from_dict({"quant_method": "hqq", "nbits": 4, "group_size": 64})


@pytest.mark.skipif(not is_hqq_available(), reason="hqq not installed")
def test_hqq_quant_config_is_hqqs_base_quantize_config() -> None:
    from hqq.core.quantize import BaseQuantizeConfig

    assert _emitted("hqq-4bit")["quant_config"] == BaseQuantizeConfig(nbits=4, group_size=64, view_as_float=False, axis=1)
