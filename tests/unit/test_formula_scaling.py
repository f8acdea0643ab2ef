"""Issue 27: a relative of a shipped model (other sizes, the same classes and options) gets the simulator's exact
figure from the shipped formula scaled, without torch; anything the SDPA gates read, or any other key, that
differs is not answered; a scaling is stored only when it reproduces a fit it was not derived from."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.estimate import formula_scaling, formula_store
from advisor.estimate.adapter import _simulator_stamp
from advisor.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parents[2]
LLAMA = "meta-llama/Meta-Llama-3-8B"
BACKENDS = ("flash", "efficient", "math")


def _base() -> dict[str, Any]:
    return dict(next(m for m in load_knowledge().models if m.hub_id == LLAMA).config)


def _key(config: dict[str, Any], **target: Any) -> dict[str, Any]:
    inputs = {**dict(architecture="LlamaForCausalLM", dtype="bfloat16", quantization="none", padded=False,
                     sdpa_backends=BACKENDS), **target}
    return formula_store.formula_key(config, inputs)


def _figures(r: Any) -> tuple[int, ...]:
    return (r.weights_bytes, r.prefill_peak_bytes, r.decode_peak_bytes, r.kv_cache_bytes, r.peak_bytes)


def _shipped_scaling() -> None:
    if formula_scaling.memory_scaling().get("simulator") != _simulator_stamp():
        pytest.fail("data/memory_scaling.json was made by another simulator: python scripts/precompute_memory_scaling.py")


RELATIVES = {  # a fine-tune's vocabulary; narrower and shallower; wider and deeper with another vocabulary
    "vocab": dict(vocab_size=128256 + 77),
    "narrow": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=8, intermediate_size=5632,
                   num_hidden_layers=24),
    "wide": dict(hidden_size=5120, num_attention_heads=40, num_key_value_heads=8, intermediate_size=13824,
                 num_hidden_layers=40, vocab_size=32000),
}
TARGETS = {"h100-sdpa": dict(attn="sdpa", device="cuda", capability=(9, 0)),
           "a100-eager": dict(attn="eager", device="cuda", capability=(8, 0)),
           "cpu-sdpa": dict(attn="sdpa", device="cpu", capability=(0, 0)),
           # bitsandbytes on a GPU: NF4 and LLM.int8 weights, buffers and dequantization scale with the sizes too
           "h100-sdpa-nf4": dict(attn="sdpa", device="cuda", capability=(9, 0), quantization="4bit"),
           "a100-sdpa-int8": dict(attn="sdpa", device="cuda", capability=(8, 0), quantization="8bit")}


@pytest.mark.parametrize("relative", sorted(RELATIVES))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_relative_gets_the_simulators_figure_byte_equal(relative: str, target: str) -> None:
    pytest.importorskip("transformers")
    from advisor.estimate.simulate import simulate

    _shipped_scaling()
    config = {**_base(), **RELATIVES[relative]}
    key = _key(config, **TARGETS[target])
    assert formula_store.lookup(key, _simulator_stamp(), batch=1, prompt=4096, seq_len=4096, use_cache=False) is None
    for prompt in (4096, 1000):
        got = formula_store.relative(key, _simulator_stamp(), batch=1, prompt=prompt, seq_len=prompt)
        assert got is not None, (relative, target, prompt)
        direct = simulate(copy.deepcopy(config), architecture="LlamaForCausalLM", dtype="bfloat16", batch=1,
                          prompt_len=prompt, seq_len=prompt, **{"quantization": "none", **TARGETS[target]})
        assert _figures(got) == _figures(direct), (relative, target, prompt)


@pytest.mark.parametrize("change", [
    dict(num_attention_heads=16),  # head dimension 256: another kernel gate
    dict(num_key_value_heads=32),  # heads no longer grouped
    dict(hidden_size=4096 + 32, num_attention_heads=33),  # not a whole head dimension
    dict(attention_bias=True),  # another structure (bias tensors): a fixed key
    dict(rope_theta=10000.0),  # a key no size scales: fixed
    dict(num_hidden_layers=3),  # too few layers for the formula's extrapolation
    dict(vocab_size=True),
    dict(quantization_config={"quant_method": "gptq", "bits": 4}),  # a pre-quantized checkpoint: simulated
])
def test_what_the_gates_read_or_a_fixed_key_changes_is_not_answered(change: dict[str, Any]) -> None:
    _shipped_scaling()
    key = _key({**_base(), **change}, attn="sdpa", device="cuda", capability=(9, 0))
    assert formula_store.relative(key, _simulator_stamp(), batch=1, prompt=4096, seq_len=4096) is None


def test_the_scaled_answer_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import json, sys\n"
        "from advisor.estimate import formula_store\n"
        "from advisor.estimate.adapter import _simulator_stamp\n"
        "from advisor.knowledge import load_knowledge\n"
        f"c = dict(next(m for m in load_knowledge().models if m.hub_id == {LLAMA!r}).config)\n"
        "c['vocab_size'] += 77\n"
        "k = formula_store.formula_key(c, dict(architecture='LlamaForCausalLM', dtype='bfloat16', quantization='none',"
        " padded=False, sdpa_backends=('flash', 'efficient', 'math'), attn='sdpa', device='cuda', capability=(9, 0)))\n"
        "r = formula_store.relative(k, _simulator_stamp(), batch=1, prompt=4096, seq_len=4096)\n"
        "print(json.dumps([r is not None, 'torch' in sys.modules, 'transformers' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, False, False]


TINY = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
            max_position_embeddings=4096, tie_word_embeddings=False)


def _fitter(target: dict[str, Any]) -> Any:
    def fit(config: dict[str, Any]) -> Any:
        key = _key(copy.deepcopy(config), **target)
        return formula_store.fit_one(key, architecture="LlamaForCausalLM", batch=1, prompt=256, seq_len=256,
                                     generative=True)
    return fit


@pytest.mark.parametrize("target", ["h100-sdpa", "cpu-sdpa"])
def test_a_derived_scaling_predicts_a_fit_it_never_saw(target: str) -> None:
    pytest.importorskip("transformers")
    fit = _fitter(TARGETS[target])
    base = fit(TINY)
    fields = ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size"]
    entry = formula_scaling.derive(copy.deepcopy(TINY), base, fit, fields, layer_field="num_hidden_layers")
    assert entry is not None and set(entry["free"]) == set(fields) and entry["period"] == 1
    exps = [formula_scaling._sparse(run) for run in entry["exponents"]]
    other = {**TINY, "hidden_size": 160, "num_attention_heads": 10, "num_key_value_heads": 5,
             "intermediate_size": 344, "vocab_size": 4099}
    predicted = formula_scaling.scaled(base, exps, formula_scaling._ratios(entry["free"], other))
    truth = fit(other)
    assert predicted is not None
    assert [formula_scaling._numbers(r) for r in predicted.runs] == [formula_scaling._numbers(r) for r in truth.runs]


def test_a_field_that_moves_the_region_is_never_free() -> None:
    pytest.importorskip("transformers")
    fit = _fitter(TARGETS["h100-sdpa"])
    base = fit(TINY)
    # the window thresholds are part of the region: doubling the context length moves it, no exponent explains it
    assert formula_scaling.derive(copy.deepcopy(TINY), base, fit, ["max_position_embeddings"],
                                  layer_field="num_hidden_layers") is None


def test_recommend_on_a_relatives_folder_prints_simulated_figures_without_torch(tmp_path: Path) -> None:
    """The planner's path end to end: the parameter count (param_formula), every memory figure the H100 plan
    prints for sdpa in bf16 (a scaled formula) and the kernel layers (the shipped row) need no import."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**_base(), "vocab_size": 128256 + 77}))
    code = ("import json, sys, runpy\n"
            "sys.argv = ['advisor', 'recommend', sys.argv[1], '--gpu', 'H100', '--format', 'json']\n"
            "try:\n    runpy.run_module('advisor', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('MODULES', json.dumps(['torch' in sys.modules, 'transformers' in sys.modules]), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "ADVISOR_CACHE_DIR": str(tmp_path / "c")})
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    assert json.loads(line.split(" ", 1)[1]) == [False, False], done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["memory"]["method"] == "simulated"
    assert report["chosen"]["candidate"] == {"attn": "sdpa", "dtype": "bfloat16", "quantization": "none",
                                             "placement": "gpu"}


def test_a_scaled_formula_is_kept_as_the_configs_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one scaled answer, another length of the same relative is the cache's exact formula (no table)."""
    from advisor.io import analysis_cache

    _shipped_scaling()
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    key = _key({**_base(), **RELATIVES["narrow"]}, **TARGETS["h100-sdpa"])
    stamp = _simulator_stamp()
    assert formula_store.lookup(key, stamp, batch=1, prompt=3001, seq_len=3001) is None
    first = formula_store.relative(key, stamp, batch=1, prompt=4096, seq_len=4096, keep=True)
    again = formula_store.lookup(key, stamp, batch=1, prompt=3001, seq_len=3001)
    scaled = formula_store.relative(key, stamp, batch=1, prompt=3001, seq_len=3001)
    assert first is not None and again is not None and _figures(again) == _figures(scaled)


def test_another_layer_count_is_extrapolated_under_the_configs_own_name() -> None:
    """DistilBERT names its layers `n_layers`: a relative with twice the layers must get the deeper figure (the
    traced runs are the same, only the count they extrapolate to moves), never the shipped one."""
    pytest.importorskip("transformers")
    from advisor.estimate.simulate import simulate

    _shipped_scaling()
    name = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    base = dict(next(m for m in load_knowledge().models if m.hub_id == name).config)
    config = {**base, "n_layers": base["n_layers"] * 2}
    architecture = base["architectures"][0]
    key = formula_store.formula_key(config, dict(architecture=architecture, dtype="float32", quantization="none",
                                                 padded=False, sdpa_backends=BACKENDS, attn="sdpa", device="cpu",
                                                 capability=(0, 0)))
    got = formula_store.relative(key, _simulator_stamp(), batch=1, prompt=512, seq_len=512)
    direct = simulate(copy.deepcopy(config), architecture=architecture, dtype="float32", attn="sdpa",
                      quantization="none", batch=1, prompt_len=512, seq_len=512, device="cpu", capability=(0, 0))
    assert got is not None and _figures(got) == _figures(direct)
