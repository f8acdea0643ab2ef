"""Issue 30: --workload and --prefer decide between tensor parallel and device_map; --tp N overrides both.

Hardware is data: `--gpu` targets (the GPU table's interconnect: H100 SXM NVLink, H100-PCIE PCIe) and the 2 x A100
snapshot of tests/fixtures/envs with the links and free memory NVML would record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from advisor.knowledge.tp_costs import TP_FIXED_COST_FILE, tp_fixed_cost

REPO = Path(__file__).resolve().parents[2]
SXM = ("--gpu", "H100", "--gpu", "H100")
PCIE = ("--gpu", "H100-PCIE", "--gpu", "H100-PCIE")
MODEL = "meta-llama/Llama-2-70b-hf"
GiB = 2**30


def _parallelism(cli: Any, *argv: str, code: int = 0) -> dict[str, Any]:
    got, out, err = cli("recommend", *argv, "--format", "json")
    assert got == code, err
    data: dict[str, Any] = json.loads(out)["parallelism"]
    return data


def _measured_line(size: int = 2) -> str:
    cost = tp_fixed_cost()
    assert cost is not None and cost.extra_seconds > 0 and cost.ranks == size
    return f"+{cost.extra_seconds:.1f} s over one process, measured on CPU processes"


def test_70b_on_two_h100_sxm_server_takes_tensor_one_shot_keeps_device_map(cli: Any) -> None:
    server = _parallelism(cli, MODEL, *SXM)  # --workload server is the default
    assert server == _parallelism(cli, MODEL, *SXM, "--workload", "server")
    assert server["kind"] == "tensor" and server["size"] == 2
    assert any(r.startswith("--workload server: a long-running process pays TP's fixed costs") and "once" in r
               for r in server["reasons"]), server["reasons"]

    one_shot = _parallelism(cli, MODEL, *SXM, "--workload", "one-shot")
    assert one_shot["kind"] == "pipeline" and one_shot["size"] == 2, one_shot["reasons"]
    assert one_shot["from_pretrained"]["device_map"] == "auto" and "distributed_config" not in one_shot["from_pretrained"]
    reasons = one_shot["reasons"]
    workload = next(r for r in reasons if r.startswith("--workload one-shot"))
    assert "before its first token" in workload and "(prediction, not measured" in workload
    fixed = next(r for r in reasons if r.startswith("TP's fixed costs"))
    for cost in ("torchrun starts 2 processes", "import torch and transformers", "process group",
                 _measured_line(), "data/tp_fixed_cost.json", "CUDA context and NCCL setup per rank",
                 "(prediction, not measured)"):
        assert cost in fixed, (cost, fixed)
    assert reasons[-1].startswith("a server (--workload server) would take tensor parallel 2: it fits, NVLink")
    # the JSON key keeps its shape: same fields, the TP rules and one rank's memory still reported
    assert one_shot.keys() == server.keys()
    assert one_shot["per_rank"] == server["per_rank"] and one_shot["tp_plan_source"] == server["tp_plan_source"]
    assert one_shot["launch"] is None


def test_one_shot_text_says_why(cli: Any) -> None:
    code, out, err = cli("recommend", MODEL, *SXM, "--workload", "one-shot")
    assert code == 0, err
    assert "Parallelism: pipeline (device_map) over 2 GPUs" in out
    assert "Parallelism: tensor parallel" not in out and "launch: torchrun" not in out
    assert "--workload one-shot: a job that loads, runs one batch and exits" in out and _measured_line() in out


@pytest.mark.parametrize("workload", ["server", "one-shot"])
def test_pcie_keeps_device_map_for_both_workloads(cli: Any, workload: str) -> None:
    p = _parallelism(cli, MODEL, *PCIE, "--workload", workload)
    assert p["kind"] == "pipeline" and p["from_pretrained"]["device_map"] == "auto"
    assert any("PCIe" in r and "prediction, not measured" in r for r in p["reasons"])
    assert not any("--workload" in r for r in p["reasons"])  # the link decides before the workload does


@pytest.mark.parametrize("workload", ["server", "one-shot"])
def test_explicit_tp_is_honoured_under_both_workloads(cli: Any, workload: str) -> None:
    p = _parallelism(cli, MODEL, *SXM, "--tp", "2", "--workload", workload)
    assert p["kind"] == "tensor" and p["size"] == 2
    assert p["from_pretrained"]["distributed_config"] == {"tp_size": 2, "tp_plan": "auto"}
    assert p["launch"] == "torchrun --nproc-per-node 2 script.py"
    assert p["reasons"][0].startswith("tensor parallel 2 as asked (--tp)")
    # one-shot states what it pays for asking; a server's reasons stay as before
    assert any(_measured_line() in r for r in p["reasons"]) == (workload == "one-shot")


def test_one_gpu_plan_takes_tensor_only_for_a_server_with_prefer_speed(cli: Any) -> None:
    """An 8B fits one H100: TP is for lower latency only, which a one-shot job does not buy, even with --prefer speed."""
    args = ("meta-llama/Meta-Llama-3-8B", *SXM, "--dtype", "bfloat16", "--quantize", "none", "--prefer", "speed")
    assert _parallelism(cli, *args)["kind"] == "tensor"
    p = _parallelism(cli, *args, "--workload", "one-shot")
    assert p["kind"] == "none" and p["size"] == 1
    assert "not for --workload one-shot (a server would take it with --prefer speed)" in p["reasons"][0]
    assert _measured_line() in p["reasons"][-1]
    quality = _parallelism(cli, "meta-llama/Meta-Llama-3-8B", *SXM, "--workload", "one-shot")
    assert quality["kind"] == "none"


def _snapshot(tmp_path: Path, free_bytes: int) -> Path:
    """The 2 x A100 snapshot, made 80 GB cards joined by NVLink with `free_bytes` free on each (other jobs hold
    the rest), as NVML would record it."""
    raw = json.loads((REPO / "tests/fixtures/envs/a100_40gb_x2_bnb.json").read_text(encoding="utf-8"))
    for gpu in raw["gpus"]:
        gpu["memory_total_bytes"] = 80 * GiB
        gpu["memory_free_bytes"] = free_bytes
    raw["links"] = [{"a": 0, "b": 1, "kind": "nvlink", "nvlink_links": 12, "pcie_level": None, "source": "nvml"}]
    path = tmp_path / f"a100_nvlink_{free_bytes}.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_one_shot_takes_tensor_where_it_is_the_one_way_to_fit_unquantized(cli: Any, tmp_path: Path) -> None:
    """device_map keeps a whole layer on each side of a GPU boundary; TP repeats the embeddings and activations
    on every rank instead. For a 70B the layer is larger, so a window of free memory exists where bf16 fits as
    2 TP ranks and not as device_map (which then needs 8-bit): there one-shot takes TP, for quality."""
    roomy = _snapshot(tmp_path, 79 * GiB)
    code, out, err = cli("recommend", MODEL, "--env", str(roomy), "--dtype", "bfloat16", "--quantize", "none",
                         "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    rank, device_map = plan["parallelism"]["per_rank"]["total_bytes"], plan["memory"]["total_bytes"]
    assert rank < device_map / 2, "premise: device_map needs more per GPU than one TP rank for this 70B"
    tight = _snapshot(tmp_path, (rank + device_map // 2) // 2)
    chosen = json.loads(cli("recommend", MODEL, "--env", str(tight), "--format", "json")[1])["chosen"]["candidate"]
    assert chosen["quantization"] != "none" and chosen["placement"] == "multi-gpu"  # device_map needs quantization
    p = _parallelism(cli, MODEL, "--env", str(tight), "--workload", "one-shot")
    assert p["kind"] == "tensor" and "quantization_config" not in p["from_pretrained"], p["reasons"]
    assert any(r.startswith(f"--workload one-shot, yet device_map needs {chosen['quantization']}; tensor parallel "
                            "is the one way bfloat16 fits unquantized") for r in p["reasons"]), p["reasons"]
    assert any(_measured_line() in r for r in p["reasons"])
    # --prefer memory asked for the smaller footprint: the quantized device_map plan stays
    memory = _parallelism(cli, MODEL, "--env", str(tight), "--workload", "one-shot", "--prefer", "memory")
    assert memory["kind"] != "tensor"


def test_doctor_and_api_carry_the_workload(cli: Any) -> None:
    code, out, err = cli("doctor", MODEL, *SXM, "--workload", "one-shot", "--format", "json")
    assert code in (0, 1), err
    assert json.loads(out)["recommendation"]["parallelism"]["kind"] == "pipeline"
    from advisor import api

    assert api.recommend(MODEL, gpu=["H100", "H100"], serving="one-shot").parallelism.kind == "pipeline"
    assert api.recommend(MODEL, gpu=["H100", "H100"]).parallelism.kind == "tensor"


def test_without_the_measurement_the_reason_says_not_measured(cli: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A maintainer's data copy without data/tp_fixed_cost.json: no figure is invented."""
    copy = tmp_path / "data"
    shutil.copytree(REPO / "data", copy)
    (copy / TP_FIXED_COST_FILE).unlink()
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(copy))
    p = _parallelism(cli, MODEL, *SXM, "--workload", "one-shot")
    fixed = next(r for r in p["reasons"] if r.startswith("TP's fixed costs"))
    assert "(not measured)" in fixed and " s over one process" not in fixed
