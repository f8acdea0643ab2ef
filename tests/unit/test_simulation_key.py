"""Issue 27: a simulation, a cached result and a memory formula are keyed on the target as the simulator tells
targets apart (`simulation_target`): one attention class for every fused implementation, one compute-capability
class between the thresholds the code reads, no capability or backend set on the CPU. The equalities are checked
on the simulator's own runs with the raw targets, so a class that merged two targets it treats differently fails."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from advisor.estimate import formula_store
from advisor.estimate import simulate as sim

ESTIMATE = Path(sim.__file__).parent
ALL = ("flash", "efficient", "math")


def _config(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "config.json").read_text()))


def _raw(config: dict[str, Any], *, dtype: str, device: str, capability: tuple[int, int], usable: tuple[str, ...],
         padded: bool = True, attn: str = "sdpa") -> dict[str, Any]:
    """The simulator on the target exactly as given (no class), its timing dropped."""
    pytest.importorskip("transformers")
    architecture = config["architectures"][0]
    generative = architecture.endswith(sim._GEN_SUFFIXES)
    target = json.dumps({"device": device, "capability": list(capability), "usable": sorted(usable)}, sort_keys=True)
    result = sim._quiet(sim._simulate_cached, json.dumps(config, sort_keys=True), architecture, dtype, attn, "none",
                        2, 24, 40 if generative else 24, padded, target)
    return result.model_dump(exclude={"seconds"})


def test_capability_classes_follow_the_thresholds() -> None:
    assert sim.capability_class((8, 6)) == sim.capability_class((8, 9)) == sim.capability_class((8, 0)) == (8, 0)
    assert sim.capability_class((7, 5)) == (7, 0) and sim.capability_class((12, 0)) == (9, 0)
    assert sim.capability_class((3, 7)) == (0, 0)
    for threshold in sim.CAPABILITY_THRESHOLDS:  # each threshold starts a class of its own
        below = (threshold[0] - 1, 9)
        assert sim.capability_class(threshold) == threshold != sim.capability_class(below)


def _capability_literals(tree: ast.AST) -> list[tuple[int, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if (isinstance(side, ast.Tuple) and len(side.elts) == 2
                        and all(isinstance(e, ast.Constant) and isinstance(e.value, int) for e in side.elts)):
                    found.append(tuple(e.value for e in side.elts))  # type: ignore[union-attr]
    return found  # type: ignore[return-value]


def test_every_capability_the_simulator_compares_with_is_a_threshold() -> None:
    """A new gate (`capability >= (10, 0)`) in the estimate room without a new class would let two targets the
    simulator treats differently share one formula: this fails first."""
    seen = set()
    for path in sorted(ESTIMATE.glob("*.py")):
        for literal in _capability_literals(ast.parse(path.read_text())):
            assert literal in sim.CAPABILITY_THRESHOLDS, f"{path.name} compares with {literal}: add it to the list"
            seen.add(literal)
    assert {(8, 0), (9, 0)} <= seen  # the scan sees the gates (sdpa.py's flash, the cuBLAS workspace)
    assert set(sim._BACKEND_GATES.values()) <= set(sim.CAPABILITY_THRESHOLDS)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_one_class_simulates_alike_and_classes_differ(tiny_llama: Path, tiny_bert: Path, dtype: str) -> None:
    """Raw targets, no normalisation: (8, 0) and (8, 6) give one result (and an L4's 8.9); (7, 0) and (7, 5)
    one; flash in a pre-sm80 card's backend set and cuDNN anywhere change nothing; the CPU ignores both the
    capability and the backend set. (8, 0) and (9, 0) differ (the cuBLAS workspace)."""
    for folder in (tiny_llama, tiny_bert):
        config = _config(folder)
        a100 = _raw(config, dtype=dtype, device="cuda", capability=(8, 0), usable=ALL)
        assert _raw(config, dtype=dtype, device="cuda", capability=(8, 6), usable=(*ALL, "cudnn")) == a100
        assert _raw(config, dtype=dtype, device="cuda", capability=(8, 9), usable=ALL) == a100
        assert _raw(config, dtype=dtype, device="cuda", capability=(9, 0), usable=ALL) != a100
        t4 = _raw(config, dtype=dtype, device="cuda", capability=(7, 5), usable=("efficient", "math"))
        assert _raw(config, dtype=dtype, device="cuda", capability=(7, 0), usable=ALL) == t4
        cpu = _raw(config, dtype=dtype, device="cpu", capability=(0, 0), usable=())
        assert _raw(config, dtype=dtype, device="cpu", capability=(9, 0), usable=("flash", "math")) == cpu


def test_simulate_and_the_formula_key_agree_on_the_classes(tiny_llama: Path) -> None:
    """`simulate` (which maps its target through `simulation_target`) gives one result for one class, and the
    formula key is equal exactly where the result is: flash_attention_2 and flex, (8, 0) and (8, 6)."""
    config = _config(tiny_llama)
    arch = config["architectures"][0]

    def run(attn: str, capability: tuple[int, int], device: str = "cuda") -> dict[str, Any]:
        sim._simulate_cached.cache_clear()  # a real second run, not the first one's cached answer
        return sim.simulate(config, architecture=arch, dtype="bfloat16", attn=attn, batch=2, prompt_len=24,
                            seq_len=40, device=device, capability=capability).model_dump(exclude={"seconds"})

    def key(attn: str, capability: tuple[int, int], device: str = "cuda",
            backends: tuple[str, ...] = ALL) -> dict[str, Any]:
        return formula_store.formula_key(config, {"architecture": arch, "dtype": "bfloat16", "attn": attn,
                                                  "quantization": "none", "padded": False, "device": device,
                                                  "capability": capability, "sdpa_backends": backends})

    assert run("flash_attention_2", (8, 0)) == run("flex_attention", (8, 6))
    assert key("flash_attention_2", (8, 0)) == key("flex_attention", (8, 6)) == key("flash_attention_3", (8, 9))
    assert run("sdpa", (8, 0)) != run("sdpa", (9, 0)) and key("sdpa", (8, 0)) != key("sdpa", (9, 0))
    assert run("sdpa", (8, 0)) != run("eager", (8, 0)) and key("sdpa", (8, 0)) != key("eager", (8, 0))
    assert key("sdpa", (7, 5), backends=("efficient", "math")) == key("sdpa", (7, 0), backends=(*ALL, "cudnn"))
    assert key("sdpa", (0, 0), "cpu", ("math",)) == key("sdpa", (9, 0), "cpu", ALL)
    assert key("sdpa", (8, 0), backends=("efficient", "math")) != key("sdpa", (8, 0))  # flash usable or not


_PLANNED = """
import contextlib, io, json, sys
from advisor.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["recommend", "meta-llama/Llama-3.2-1B", *sys.argv[1:], "--format", "json", "--no-cache"])
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(json.dumps({"report": json.loads(out.getvalue()), "heavy": heavy}))
"""


@pytest.mark.parametrize("target", [("--gpu", "L4"), ("--gpu", "T4"), ("--env", "cpu_only")])
def test_a_shipped_model_prints_the_simulators_figure_on_other_targets(target: tuple[str, str]) -> None:
    """Every figure `recommend` prints for a shipped model on an L4 (8.9: the A100's class), a T4 and the CPU
    comes from data/memory_formulas.json, without importing torch, and the choice's equals a direct simulation
    at the card's own capability (before, all of them were the closed form: only the H100's sdpa/bf16 was shipped)."""
    import os
    import subprocess
    import sys

    from advisor.estimate.adapter import _simulator_stamp
    from advisor.knowledge.installed import installed_version

    table = formula_store.shipped_table()
    if table.get("simulator") != _simulator_stamp() or installed_version() not in table.get("releases", {}):
        pytest.fail("data/memory_formulas.json is stale: run scripts/precompute_memory.py")
    root = ESTIMATE.parents[1]
    flag, value = target
    value = str(root / "tests" / "fixtures" / "envs" / f"{value}.json") if flag == "--env" else value
    done = subprocess.run([sys.executable, "-c", _PLANNED, flag, value], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "ADVISOR_NO_CACHE": "1"}, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    report = result["report"]
    figures = [report["memory"], *(a["memory"] for a in report["alternatives"])]
    assert result["heavy"] == [] and len(figures) > 3
    assert [f["method"] for f in figures] == ["simulated"] * len(figures)
    from advisor.model.resolve import resolve_model

    model = resolve_model("meta-llama/Llama-3.2-1B")
    chosen = report["chosen"]["candidate"]
    device, capability = {"L4": ("cuda", (8, 9)), "T4": ("cuda", (7, 5))}.get(value, ("cpu", (0, 0)))
    direct = sim.simulate(dict(model.config), architecture=model.architecture, dtype=chosen["dtype"],
                          attn=chosen["attn"], batch=report["batch"], prompt_len=report["seq_len"],
                          seq_len=report["seq_len"], device=device, capability=capability)
    memory = report["memory"]
    assert (memory["weights_bytes"], memory["kv_cache_bytes"], memory["activation_bytes"]) == (
        direct.weights_bytes, direct.kv_cache_bytes, direct.activation_bytes + direct.workspace_bytes)


def test_an_encoder_decoder_at_the_planners_shape_simulates(tiny_t5: Path) -> None:
    """recommend and check size T5 at s == p (no new token): the decode step then grew its cache to -1 tokens and
    the simulation failed (every T5 figure fell back to the closed form); it now decodes the one token generate()
    always makes, as at one new token, the logits processors aside."""
    config = _config(tiny_t5)
    arch = config["architectures"][0]
    at = {n: sim.simulate(config, architecture=arch, dtype="float32", attn="sdpa", batch=1, prompt_len=20,
                          seq_len=20 + n, device="cuda", capability=(9, 0)) for n in (0, 1)}
    assert at[0].prefill_peak_bytes == at[1].prefill_peak_bytes > 0
    assert at[0].kv_cache_bytes == at[1].kv_cache_bytes > 0 and at[0].decode_peak_bytes > 0
