"""Issue 27: the simulator's answer at any shape from a formula on its allocation trace, byte-equal or refused;
the planner's printed paths (a new config, a config seen before at a new shape, a shipped model) agree with a
direct simulation, and the shipped one imports neither torch nor transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.estimate import formula_store, trace_formula
from advisor.estimate.adapter import _simulator_stamp
from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version

ROOT = Path(__file__).resolve().parents[2]
SHAPE = dict(dtype="bfloat16", attn="sdpa", quantization="none", device="cuda", capability=(9, 0),
             sdpa_backends=("flash", "efficient", "math"))


def _save(tmp: Path, config_cls: str, model_cls: str, **kwargs: Any) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(vocab_size=1000, pad_token_id=0,
                                                                               **kwargs))
    model.save_pretrained(tmp)
    return json.loads((tmp / "config.json").read_text())  # type: ignore[no-any-return]


TINY = {  # several architectures: dense, sliding window, MoE, SSM (Mamba-2's chunked scan), an encoder
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                                       num_attention_heads=4, num_key_value_heads=2,
                                                       max_position_embeddings=4096)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(hidden_size=64, intermediate_size=128,
                                                             num_hidden_layers=2, num_attention_heads=4,
                                                             num_key_value_heads=1, sliding_window=48)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                                             num_attention_heads=4, num_key_value_heads=2,
                                                             num_local_experts=4, num_experts_per_tok=2)),
    "mamba2": ("Mamba2Config", "Mamba2ForCausalLM", dict(hidden_size=64, num_hidden_layers=2, num_heads=8,
                                                          head_dim=16, state_size=16, n_groups=1, chunk_size=32,
                                                          time_step_limit=(0.0, 100.0))),
    "bert_mlm": ("BertConfig", "BertForMaskedLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                        num_attention_heads=4)),
}


def _figures(r: Any) -> tuple[int, ...]:
    return (r.weights_bytes, r.prefill_peak_bytes, r.decode_peak_bytes, r.kv_cache_bytes, r.peak_bytes)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("padded", [False, True])
def test_a_formula_is_byte_equal_to_the_simulator_at_shapes_it_never_saw(tmp_path: Path, name: str,
                                                                         padded: bool) -> None:
    from advisor.estimate.simulate import simulate

    config = _save(tmp_path, *TINY[name][:2], **TINY[name][2])
    arch = config["architectures"][0]
    generative = arch.endswith("ForCausalLM")
    new = 6 if generative else 0
    shape = {**SHAPE, "attn": "eager"} if name == "mamba2" else SHAPE  # Mamba-2 has no SDPA path
    formula = trace_formula.fit(config, arch, padded=padded, batch=3, prompt=20, seq_len=20 + new,
                                generative=generative, **shape)
    for batch, prompt in ((5, 17), (2, 29), (9, 24)):  # none of them recorded by the fit
        if not trace_formula.applies(formula, config, batch, prompt, prompt + new):
            continue
        direct = simulate(config, architecture=arch, batch=batch, prompt_len=prompt, seq_len=prompt + new,
                          padded=padded, **shape)
        assert _figures(trace_formula.evaluate(formula, batch, prompt, prompt + new)) == _figures(direct)


def test_a_loop_over_tokens_is_refused(tmp_path: Path) -> None:
    """Mamba's slow path (no mamba-ssm kernels) runs one scan step per token: the op sequence grows with the
    prompt, so no formula holds, and the planner simulates instead."""
    config = _save(tmp_path, "MambaConfig", "MambaForCausalLM", hidden_size=32, num_hidden_layers=2, state_size=8)
    with pytest.raises(trace_formula.Refused, match="op sequence"):
        trace_formula.fit(config, "MambaForCausalLM", padded=False, batch=2, prompt=20, seq_len=26, generative=True,
                          **{**SHAPE, "attn": "eager"})


def test_regions_keep_window_sides_and_batch_one_apart() -> None:
    config = {"sliding_window": 64, "max_position_embeddings": 1024}
    below = trace_formula.region(config, 4, 20, 30, True)
    assert below is not None and below == trace_formula.region(config, 7, 40, 50, True)
    assert trace_formula.region(config, 4, 100, 130, True) != below  # past the window
    assert trace_formula.region(config, 1, 20, 30, True) != below  # batch 1
    assert trace_formula.region(config, 4, 20, 21, True) is None  # one new token: another branch of generate()
    diagonal = trace_formula.region(config, 4, 20, 20, True)  # the planner's shape: a prefill of the whole length
    assert diagonal is not None and diagonal.diagonal and diagonal != below
    assert diagonal == trace_formula.region(config, 6, 40, 40, True)
    assert trace_formula.region(config, 4, 100, 100, True) != diagonal  # past the window


@pytest.mark.parametrize("name", ["llama", "mixtral", "mistral"])
def test_the_planners_own_shape_has_an_exact_formula(tmp_path: Path, name: str) -> None:
    """recommend and check size a prefill of the whole length (s == p): that diagonal gets a formula in b and p,
    byte-equal at lengths it never saw (before, no formula held there: every new length simulated)."""
    from advisor.estimate.simulate import simulate

    config = _save(tmp_path, *TINY[name][:2], **TINY[name][2])
    arch = config["architectures"][0]
    formula = trace_formula.fit(config, arch, padded=False, batch=2, prompt=24, seq_len=24, generative=True, **SHAPE)
    assert formula.region.diagonal
    checked = 0
    for batch, length in ((5, 17), (3, 31), (9, 26)):
        if trace_formula.applies(formula, config, batch, length, length):
            direct = simulate(config, architecture=arch, batch=batch, prompt_len=length, seq_len=length, **SHAPE)
            assert _figures(trace_formula.evaluate(formula, batch, length, length)) == _figures(direct)
            checked += 1
    assert checked >= 2


def _spec(config: dict[str, Any], folder: Path) -> Any:
    from advisor.model.resolve import describe_config

    return describe_config(config, name=str(folder), source="folder")


def test_the_planner_paths_agree_with_a_direct_simulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new config is simulated (and its formula fitted); the same config seen again at a new shape is served by
    the formula without a run; both equal a direct simulation, as recommend/check print it (estimate_memory)."""
    from advisor.estimate import simulate as sim
    from advisor.facts import GpuInfo
    from advisor.estimate.memory import estimate_memory
    from advisor.probe.target import load_environment

    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    config = _save(tmp_path / "m", *TINY["llama"][:2], **TINY["llama"][2])
    formula_store._PENDING.clear()  # fits other tests queued
    gpus: tuple[GpuInfo, ...] = load_environment(ROOT / "docs" / "examples" / "h100-probe.json").gpu_list[:1]
    args = dict(dtype="bfloat16", quantization="none", attn="sdpa", gpus=gpus, simulate=True)

    def direct(batch: int, prompt: int, seq: int) -> int:
        cc = gpus[0].compute_capability
        return sim.simulate(config, architecture="LlamaForCausalLM", dtype="bfloat16", attn="sdpa", batch=batch,
                            prompt_len=prompt, seq_len=seq, device="cuda",
                            capability=(int(cc.major), int(cc.minor))).peak_bytes - sim.cublas_workspace_bytes((9, 0))

    first = estimate_memory(_spec(config, tmp_path), batch=4, seq_len=72, prompt_len=64, **args)
    assert first.method == "simulated"
    assert first.peak_allocated_bytes == direct(4, 64, 72) + sim.cublas_workspace_bytes((9, 0))
    planned = estimate_memory(_spec(config, tmp_path), batch=2, seq_len=64, **args)  # recommend's shape: s == p
    assert planned.peak_allocated_bytes == direct(2, 64, 64) + sim.cublas_workspace_bytes((9, 0))
    # the fits wait until the answer is out (the CLI hands them to a detached child): nothing fitted yet
    assert not any(formula_store._entry(k, _simulator_stamp()).get("formulas")
                   for k in [job["key"] for job in formula_store._PENDING])
    assert len(formula_store.fit_pending()) == 2 and not formula_store._PENDING
    sim._simulate_cached.cache_clear()
    seen = _spec(config, tmp_path)
    assert seen.analysed_now is False  # counted before: the old rule gave the closed form here
    misses = sim._simulate_cached.cache_info().misses
    again = estimate_memory(seen, batch=6, seq_len=108, prompt_len=100, **args)
    assert sim._simulate_cached.cache_info().misses == misses, "the seen config was simulated, not replayed"
    assert again.method == "simulated"
    assert again.peak_allocated_bytes == direct(6, 100, 108) + sim.cublas_workspace_bytes((9, 0))
    misses = sim._simulate_cached.cache_info().misses
    longer = estimate_memory(seen, batch=3, seq_len=90, **args)  # a seen config at a new length, as recommend asks
    assert sim._simulate_cached.cache_info().misses == misses, "the planner's shape was simulated, not replayed"
    assert longer.peak_allocated_bytes == direct(3, 90, 90) + sim.cublas_workspace_bytes((9, 0))


_SHIPPED = """
import json, sys
from advisor.estimate.adapter import simulated
from advisor.model.resolve import resolve_model
from advisor.probe.target import load_environment
gpus = load_environment(sys.argv[1]).gpu_list[:1]
model = resolve_model("meta-llama/Llama-3.2-1B")
sim = simulated(model, dtype="bfloat16", quantization="none", attn="sdpa", batch=1, prompt_len=int(sys.argv[2]),
                seq_len=int(sys.argv[2]) + 70, gpus=gpus)
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(json.dumps({"peak": sim.peak_bytes if sim else None, "heavy": heavy}))
"""


def test_a_shipped_model_at_a_new_shape_is_exact_without_torch(tmp_path: Path) -> None:
    table = formula_store.shipped_table()
    release = installed_version()
    if table.get("simulator") != _simulator_stamp() or release not in table.get("releases", {}):
        pytest.fail("data/memory_formulas.json is stale: run scripts/precompute_memory.py")
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(tmp_path)}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    probe = str(ROOT / "docs" / "examples" / "h100-probe.json")
    done = subprocess.run([sys.executable, "-c", _SHIPPED, probe, "50"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["peak"] is not None
    from advisor.estimate.simulate import simulate
    from advisor.model.resolve import resolve_model

    model = resolve_model("meta-llama/Llama-3.2-1B")
    direct = simulate(dict(model.config), architecture=model.architecture, dtype="bfloat16", attn="sdpa", batch=1,
                      prompt_len=50, seq_len=120, device="cuda", capability=(9, 0))
    assert result["peak"] == direct.peak_bytes


def test_the_bitsandbytes_traces_are_read_only_when_a_bitsandbytes_formula_answers() -> None:
    """memory_formulas_runs_quantized.json (4 MB) is parsed only for a quantized key: a machine without
    bitsandbytes keeps the 60 ms read of the plain traces; the 4-bit figure is the simulator's, byte for byte."""
    from advisor.estimate.simulate import simulate, simulation_target
    from advisor.knowledge import memory_tables
    from advisor.model.resolve import resolve_model
    from advisor.plan.recommend import default_seq_len

    model = resolve_model("meta-llama/Llama-3.2-1B")
    prompt = default_seq_len(model, None)
    target = simulation_target(attn="sdpa", device="cuda", capability=(9, 0), sdpa_backends=("flash", "efficient", "math"))

    def figure(quantization: str) -> Any:
        inputs = dict(architecture=model.architecture, dtype="bfloat16", quantization=quantization, batch=1,
                      prompt_len=prompt, seq_len=prompt, padded=False, **target)
        key = formula_store.formula_key(model.config, inputs)
        return formula_store.lookup(key, _simulator_stamp(), batch=1, prompt=prompt, seq_len=prompt, use_cache=False)

    memory_tables.memory_formula_runs.cache_clear()
    assert figure("none") is not None
    assert memory_tables.memory_formula_runs.cache_info().currsize == 1  # the plain traces only
    four = figure("4bit")
    assert four is not None and memory_tables.memory_formula_runs.cache_info().currsize == 2
    direct = simulate(dict(model.config), architecture=model.architecture, dtype="bfloat16", attn="sdpa",
                      quantization="4bit", batch=1, prompt_len=prompt, seq_len=prompt, device="cuda", capability=(9, 0))
    assert four.peak_bytes == direct.peak_bytes


def test_a_mamba_plan_names_the_missing_kernels(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: an SSM on a GPU without mamba-ssm / causal-conv1d gets SSM001 naming them; its memory figure is
    the slow path's, simulated (no closed form)."""
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    _save(tmp_path / "mamba", "MambaConfig", "MambaForCausalLM", hidden_size=32, num_hidden_layers=2, state_size=8)
    probe = str(ROOT / "docs" / "examples" / "h100-probe.json")
    code, out, err = cli("check", str(tmp_path / "mamba"), "--env", probe, "--attn", "eager", "--format", "json")
    assert code in (0, 1), err
    report = json.loads(out)
    findings = json.dumps(report)
    assert "SSM001" in findings and "mamba-ssm" in findings and "causal-conv1d" in findings
    assert report["memory"]["method"] == "simulated"


def test_fits_run_after_the_answer_in_a_detached_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m advisor` hands the fits its command queued to advisor.estimate.fit_worker (fit_later): the
    formula lands in the analysis cache after the command is gone, and nothing was fitted inline."""
    import time

    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(analysis_cache.NO_CACHE_ENV, raising=False)
    config = _save(tmp_path / "m", *TINY["llama"][:2], **TINY["llama"][2])
    key = formula_store.formula_key(config, {"architecture": "LlamaForCausalLM", "padded": False, **SHAPE})
    formula_store._PENDING.clear()
    formula_store.record(key, _simulator_stamp(), architecture="LlamaForCausalLM", batch=2, prompt=40, seq_len=40,
                         generative=True)
    formula_store.record(key, _simulator_stamp(), architecture="LlamaForCausalLM", batch=2, prompt=40, seq_len=41,
                         generative=True)  # 1 new token: no formula there, nothing queued, nothing refused
    assert len(formula_store._PENDING) == 1 and formula_store.lookup(key, _simulator_stamp(), batch=3, prompt=50,
                                                                      seq_len=50) is None
    assert formula_store.fit_later() is True and not formula_store._PENDING
    deadline = time.monotonic() + 240
    while formula_store.lookup(key, _simulator_stamp(), batch=3, prompt=50, seq_len=50) is None:
        assert time.monotonic() < deadline, "the detached fit left no formula"
        time.sleep(1)
    assert not formula_store.refused(key, _simulator_stamp())


_STALE = """
import json, sys
from advisor.estimate.memory import estimate_memory
from advisor.model.resolve import resolve_model
from advisor.probe.target import load_environment
gpus = load_environment(sys.argv[1]).gpu_list[:1]
est = estimate_memory(resolve_model("meta-llama/Llama-3.2-1B"), dtype="bfloat16", quantization="none", attn="sdpa",
                      batch=1, seq_len=300, gpus=gpus, simulate=True)  # as the planner asks (no --simulate)
print(json.dumps({"method": est.method, "peak": est.peak_allocated_bytes}))
"""


def test_a_shipped_model_simulates_where_the_shipped_formulas_are_stale(tmp_path: Path) -> None:
    """data/memory_formulas.json made under another simulator is never used: a shipped model then gets the
    simulated figure, not a formula proved under other code, nor the closed form."""
    data = tmp_path / "data"
    data.mkdir()
    for item in (ROOT / "data").iterdir():
        if item.name != formula_store.FILE:
            (data / item.name).symlink_to(item)
    stale = {**formula_store.shipped_table(), "simulator": "0" * 16}
    (data / formula_store.FILE).write_text(json.dumps(stale))
    env = {**os.environ, "ADVISOR_DATA_DIR": str(data), analysis_cache.CACHE_DIR_ENV: str(tmp_path / "cache")}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    probe = str(ROOT / "docs" / "examples" / "h100-probe.json")
    done = subprocess.run([sys.executable, "-c", _STALE, probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    from advisor.estimate.memory import estimate_memory
    from advisor.model.resolve import resolve_model
    from advisor.probe.target import load_environment

    direct = estimate_memory(resolve_model("meta-llama/Llama-3.2-1B"), dtype="bfloat16", quantization="none",
                             attn="sdpa", batch=1, seq_len=300, simulate=True, always_simulate=True,
                             gpus=load_environment(probe).gpu_list[:1], cache=False)
    assert result == {"method": "simulated", "peak": direct.peak_allocated_bytes}
