"""Issue 27 part 3: `tune` estimates each candidate's cost before it starts, measures the static choice and its closest
rival first, says up front when the budget cannot hold them, and ends within the budget plus its stated margin.

Hardware is data (tests/fixtures/envs); the budget runs are real children on the CPU, asserted loosely (the box is
shared): no timing target beyond the budget contract."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from advisor.api import target_environment
from advisor.model.resolve import resolve_model
from advisor.model.spec import ModelSpec
from advisor.prove.tune import MARGIN_SECONDS, budget_note, model_config_dict, plan_tune, run_tune
from advisor.prove.tune_cost import FIRST_CALL_DEFAULT

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
SLACK = 10.0  # the parent's own work after the last child (store, report) on a loaded 2-core box
GPT_OSS = {"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": 64, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "vocab_size": 1000, "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 512,
           "layer_types": ["sliding_attention", "full_attention"], "sliding_window": 16}


def _env(name: str):  # noqa: ANN202 - an Environment
    return target_environment(env=ENVS / f"{name}.json")


def _config_model(tmp_path: Path, config: dict) -> tuple[ModelSpec, dict]:
    folder = tmp_path / config["model_type"]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    model = resolve_model(str(folder))
    return model, model_config_dict(model, str(folder))


def test_flex_as_the_static_choice_is_timed_first(tmp_path: Path) -> None:
    """gpt-oss on a T4: flex_attention is the static choice (sinks rule sdpa out); tune timed it last in its group
    (the 60 s budget then skipped it on the H100). Now it runs first and eager, its closest rival, second."""
    model, config = _config_model(tmp_path, GPT_OSS)
    tp = plan_tune(model, _env("t4_plain"), config)
    labels = [o.label for o, _ in tp.ordered]
    assert tp.plan.chosen is not None and labels[0] == tp.plan.chosen.label
    assert labels[:2] == ["flex_attention / float16 / 1 GPU", "eager / float16 / 1 GPU"]
    assert tp.ordered[0][1].startswith("static choice") and tp.ordered[1][1].startswith("closest rival")
    assert tp.costs[labels[0]].compile == FIRST_CALL_DEFAULT["flex_attention"]  # a T4 has no measured first call


@pytest.mark.parametrize("env", sorted(p.stem for p in ENVS.glob("*.json")))
def test_static_choice_then_its_rival_then_value_per_second(tiny_llama: Path, env: str) -> None:
    model = resolve_model(str(tiny_llama))
    tp = plan_tune(model, _env(env), model_config_dict(model, str(tiny_llama)))
    if not tp.ordered:
        pytest.skip(f"{env}: nothing tune can time")
    static, rival = tp.ordered[0][0], tp.ordered[1][0]
    assert tp.plan.chosen is not None and static.label == tp.plan.chosen.label
    skipped = {s.label for s in tp.skipped}  # quantized (random weights) and multi-GPU options: not timed
    runnable = [o for o in tp.options if o.label not in skipped]
    same = [o for o in runnable[1:] if (o.candidate.dtype, o.candidate.quantization, o.candidate.placement) ==
            (static.candidate.dtype, static.candidate.quantization, static.candidate.placement)]
    assert rival is (same[0] if same else runnable[1])
    rank = {o.label: i for i, o in enumerate(tp.options)}
    rest = [tp.costs[o.label].seconds * (1 + rank[o.label]) for o, _ in tp.ordered[2:]]  # seconds per unit of prior
    assert rest == sorted(rest)
    assert {o.label for o, _ in tp.ordered} | {s.label for s in tp.skipped} == set(rank)


def test_compile_estimate_comes_from_the_shipped_first_call_row() -> None:
    """gpt2's flash-attn-4 prefill first call was measured on the H100 (data/measurements/h100.json: 2.862 s)."""
    model = resolve_model("openai-community/gpt2")
    tp = plan_tune(model, _env("h100_fa4_tf517"), model_config_dict(model, "openai-community/gpt2"))
    cost = tp.costs["flash_attention_4 / bfloat16 / 1 GPU"]
    assert cost.compile == pytest.approx(2.862, abs=0.05)
    assert "measured first call of this model" in cost.basis["compile"]
    assert tp.costs["sdpa / bfloat16 / 1 GPU"].compile == 0
    flex = [c for label, c in tp.costs.items() if label.startswith("flex_attention")]
    assert all("slowest measured first call" in c.basis["compile"] for c in flex)  # gpt2's own flex row is missing
    for c in tp.costs.values():
        assert c.seconds == pytest.approx(c.start + c.load + c.compile + c.timed, abs=0.3)
        assert set(c.basis) == {"start", "load", "compile", "timed"}


def test_a_budget_too_small_for_the_static_choice_and_its_rival_says_so(tiny_llama: Path) -> None:
    model = resolve_model(str(tiny_llama))
    tp = plan_tune(model, _env("cpu_only"), model_config_dict(model, str(tiny_llama)))
    a, b = (tp.costs[o.label].seconds for o, _ in tp.ordered[:2])
    line = budget_note(5, 0.0, tp.ordered, tp.costs)
    assert line is not None and "\n" not in line
    found = re.fullmatch(r"budget 5 s is too small for sdpa and eager \(estimated (\d+) s \+ (\d+) s\): measuring "
                         r"sdpa only, stopped at 5 s \+ 5 s if it runs over; --budget-seconds (\d+) would measure both",
                         line)
    assert found, line
    assert int(found[3]) >= a + b and int(found[3]) % 10 == 0
    between = budget_note(a + 1, 0.0, tp.ordered, tp.costs)  # holds the first, not both: no stop clause
    assert between is not None and "measuring sdpa only;" in between
    assert budget_note(int(found[3]), 0.0, tp.ordered, tp.costs) is None


@pytest.mark.slow  # real children on the CPU
def test_budget_respected_rival_second_and_skips_named_with_estimates(tiny_llama: Path) -> None:
    model = resolve_model(str(tiny_llama))
    said: list[str] = []
    budget = 12.0
    begin = time.perf_counter()
    report = run_tune(model, target_environment(cpu=True), model_config_dict(model, str(tiny_llama)),
                      workload="decode", budget=budget, record=False, say=said.append)
    wall = time.perf_counter() - begin
    assert wall <= budget + MARGIN_SECONDS + SLACK, wall
    assert report.elapsed_seconds <= budget + MARGIN_SECONDS
    assert said == [report.budget_note] and "too small for sdpa and eager" in said[0]
    assert [e.label for e in report.estimates[:2]] == [report.static_choice, "eager / float32 / CPU"]
    assert report.estimates[0].outcome in ("measured", "stopped")
    skipped = [e for e in report.estimates if e.outcome == "skipped"]
    assert skipped, "a 12 s budget holds one tiny child on this box, not six"
    for e in skipped:
        reason = next(s.reason for s in report.skipped if s.label == e.label)
        assert reason and f"estimated {e.seconds:.0f} s" in reason and "--budget-seconds" in reason
    data = json.loads(report.model_dump_json())
    assert {"estimates", "budget_note", "margin_seconds", "ranking", "skipped", "budget_seconds"} <= set(data)


@pytest.mark.slow  # one real child, stopped
def test_a_child_past_the_budget_is_stopped(tmp_path: Path) -> None:
    """A prefill of 4,094 tokens through 8 layers takes the CPU tens of seconds; a 1 s budget stops it at 1 + 5 s."""
    config = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 8,
              "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 1000,
              "max_position_embeddings": 4096, "architectures": ["LlamaForCausalLM"]}
    model, cfg = _config_model(tmp_path, config)
    begin = time.perf_counter()
    report = run_tune(model, target_environment(cpu=True), cfg, workload="prefill", budget=1.0, record=False)
    assert time.perf_counter() - begin <= 1.0 + MARGIN_SECONDS + SLACK
    assert not report.ok and report.estimates[0].outcome == "stopped"
    stop = next(s.reason for s in report.skipped if s.label == report.static_choice)
    assert stop and stop.startswith("stopped at the budget")
    assert all(e.outcome == "skipped" for e in report.estimates[1:])
