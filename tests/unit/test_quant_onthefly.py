"""Issue 17 item 4: HQQ cannot quantize on the fly in any transformers 5.x release.

The H200 run (docs/gpu/quant-methods/run2/, transformers 5.17.0, hqq 0.2.8) loaded the HqqConfig and then failed:
"NotImplementedError: QuantizationMethod.HQQ is not available yet and will be supported soon." Source: 5.17.0
core_model_loading.py:1679 calls `hf_quantizer.get_quantize_ops()` for every weight that
`param_needs_quantization` when the checkpoint is not pre-quantized; quantizers/quantizer_hqq.py defines no
`get_quantize_ops`, so quantizers/base.py:289 `HfQuantizer.get_quantize_ops` raises. 4.57.6 loaded through
modeling_utils.py's call to the quantizer's `create_quantized_param` (quantizers/quantizer_hqq.py:165).
The facts are generated from the wheels (data/release_constraints.json); the hardware is snapshot data
(tests/fixtures/envs/h100_hqq_tf517.json, h100_hqq_tf457.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import transformers
from packaging.version import Version

from advisor.knowledge.onthefly import onthefly
from advisor.knowledge.releases import load_release_constraints
from advisor.probe.target import load_environment
from advisor.rules.method_readiness import doctor_rows, ready_quantizations

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
TF517, TF457 = (str(ENVS / f"{n}.json") for n in ("h100_hqq_tf517", "h100_hqq_tf457"))
MODEL = "mistralai/Mistral-7B-v0.1"
WORKS_IN_5X = ("bitsandbytes_8bit", "bitsandbytes_4bit", "quanto", "fp8", "fbgemm_fp8", "torchao")


def _check(cli: Any, env: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("check", MODEL, "--quantize", "hqq-4bit", "--dtype", "bfloat16", "--env", env,
                         "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


# -- the generated facts ---------------------------------------------------------------------------------


def test_no_5x_release_defines_hqq_get_quantize_ops_and_every_other_method_does() -> None:
    rc = load_release_constraints()
    five = [r for r in rc.releases if r.startswith("5.")]
    assert five[0] == "5.0.0" and five[-1] == rc.releases[-1]  # every stored 5.x release, the newest included
    for release in five:
        assert rc.at("onthefly_hqq", release).value is None, release  # type: ignore[union-attr]
        assert rc.at("quantize_ops_call", release).value == "get_quantize_ops", release  # type: ignore[union-attr]
        assert rc.at("quantize_ops_base", release).value == "NotImplementedError", release  # type: ignore[union-attr]
        for key in WORKS_IN_5X:  # the GPU run passed quanto and bitsandbytes
            assert rc.at(f"onthefly_{key}", release).value == "get_quantize_ops", (key, release)  # type: ignore[union-attr]


def test_each_release_keeps_its_own_line() -> None:
    """The lines the brief read from the 5.17.0 wheel: core_model_loading.py:1679, quantizers/base.py:289."""
    rc = load_release_constraints()
    call, base = rc.at("quantize_ops_call", "5.17.0"), rc.at("quantize_ops_base", "5.17.0")
    assert call is not None and call.file == "core_model_loading.py" and call.lines is not None
    assert call.lines["5.17.0"] == 1679 and call.lines["5.0.0"] == 1162
    assert base is not None and base.lines is not None and base.lines["5.17.0"] == 289
    old = rc.at("onthefly_hqq", "4.57.6")
    assert old is not None and old.value == "create_quantized_param" and old.first == "4.41.2"
    assert old.file == "quantizers/quantizer_hqq.py" and old.lines is not None and old.lines["4.57.6"] == 165
    assert rc.at("quantize_ops_call", "4.57.6").value == "create_quantized_param"  # type: ignore[union-attr]
    assert rc.at("onthefly_hqq", "4.40.2").value is False  # type: ignore[union-attr]  # no HQQ quantizer yet


def test_the_installed_release_agrees_with_the_table() -> None:
    """The real installed classes: HQQ inherits HfQuantizer.get_quantize_ops, which raises NotImplementedError;
    quanto and bitsandbytes override it (for a 5.x install)."""
    if Version(transformers.__version__).major < 5:
        pytest.skip("4.x has no get_quantize_ops")
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer
    from transformers.quantizers.quantizer_hqq import HqqHfQuantizer
    from transformers.quantizers.quantizer_quanto import QuantoHfQuantizer

    assert HqqHfQuantizer.get_quantize_ops is HfQuantizer.get_quantize_ops
    assert QuantoHfQuantizer.get_quantize_ops is not HfQuantizer.get_quantize_ops
    assert Bnb4BitHfQuantizer.get_quantize_ops is not HfQuantizer.get_quantize_ops
    with pytest.raises(NotImplementedError, match="not available yet"):
        HfQuantizer.get_quantize_ops(SimpleNamespace(quantization_config=SimpleNamespace(quant_method="hqq")))
    verdict = onthefly(transformers.__version__, "hqq")
    assert verdict is not None and not verdict.ok


# -- the rule, the planner and doctor on snapshots ----------------------------------------------------------


def test_hqq_is_rejected_on_5_17_with_the_release_lines_and_a_fix_that_runs(cli: Any) -> None:
    code, result = _check(cli, TF517)
    assert code == 1
    found = next(f for f in result["failures"] if f["code"] == "QUANT008")
    assert "transformers 5.17.0 cannot quantize it on the fly" in found["message"]
    assert "quantizers/quantizer_hqq.py" in found["message"] and "core_model_loading.py:1679" in found["message"]
    assert "quantizers/base.py:289" in found["message"]
    assert "pip install" not in found["fix"].split(";")[0]  # installing hqq again cannot help
    assert "--quantize 4bit" in found["fix"] and "--quantize quanto-int8" in found["fix"]
    assert "quantizer_quanto.py:119" in found["fix"]  # where 5.17.0's QuantoHfQuantizer defines get_quantize_ops
    assert "pip install 'transformers==4.57.6'" in found["fix"] and "quantizer_hqq.py:165" in found["fix"]


def test_hqq_is_not_rejected_under_4_57(cli: Any) -> None:
    code, result = _check(cli, TF457)
    assert not [f for f in result["failures"] if f["code"] == "QUANT008"], result["failures"]
    assert code == 0


def test_the_planner_and_doctor_say_the_same() -> None:
    new, old = load_environment(TF517), load_environment(TF457)
    cc = new.gpu_list[0].compute_capability
    assert "hqq-4bit" not in ready_quantizations(new, cc, "gpu")
    assert "quanto-int8" in ready_quantizations(new, cc, "gpu")
    assert "hqq-4bit" in ready_quantizations(old, cc, "gpu")
    rows = {name: (status, value, fix) for name, status, value, fix in doctor_rows(new, cc)}
    status, value, fix = rows["hqq"]
    assert status == "info" and "transformers 5.17.0 cannot quantize it on the fly" in value
    assert "--quantize quanto-int8" in fix and "transformers==4.57.6" in fix
    assert rows["quanto"][0] == "ok"
    assert {name: status for name, status, _, _ in doctor_rows(old, cc)}["hqq"] == "ok"


def test_smoke_rejects_hqq_up_front_on_this_machine(cli: Any, tiny_llama: Path) -> None:
    """The installed transformers (5.x) cannot quantize HQQ while loading: smoke exits 2 before any child runs,
    naming the installed release's own lines."""
    if Version(transformers.__version__).major < 5:
        pytest.skip("4.x quantizes HQQ on the fly")
    code, _, err = cli("smoke", str(tiny_llama), "--quantize", "hqq-4bit", "--dtype", "bfloat16")
    assert code == 2
    rc = load_release_constraints()
    release = rc.stored_release(transformers.__version__)
    call = rc.at("quantize_ops_call", transformers.__version__)
    assert release is not None and call is not None and call.lines is not None
    assert f"core_model_loading.py:{call.lines[release]}" in err and "get_quantize_ops" in err
