"""Issue 17 item 4, defect 1: fine-grained FP8 from transformers 5.4 needs `kernels` and a Hub kernel.

The H200 run (docs/gpu/quant-methods/, transformers 5.17.0) loaded FineGrainedFP8Config and failed at the first
forward: "finegrained-fp8 kernel unavailable: kernels is either not installed or uses an incompatible version"
(5.17.0 integrations/finegrained_fp8.py:106-109). The facts come from the wheels (data/release_constraints.json
`fp8_hub_kernel`, `fp8_kernel_version`, `kernels_window`); hardware and installed libraries are snapshot data
(tests/fixtures/envs), and the Hub cache listing runs on a real directory laid out as huggingface_hub does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import transformers

from advisor.knowledge.releases import load_release_constraints
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.hub_cache import cached_hub_kernels, kernels_cache_root
from advisor.probe.packages import probe_libraries
from advisor.probe.target import load_environment
from advisor.rules.method_readiness import doctor_rows, ready_quantizations

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"
BARE, UNCACHED, CACHED = (str(ENVS / f"{n}.json") for n in ("h100_fa2_fa3_bnb", "h100_kernels_uncached",
                                                             "h100_fp8_kernel_cached"))
MIXTRAL = "mistralai/Mixtral-8x7B-v0.1"
FETCH_V4 = ("python -c \"from huggingface_hub import snapshot_download; "
            "snapshot_download('kernels-community/finegrained-fp8', repo_type='kernel', revision='v4')\"")


def _check(cli: Any, env: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli("check", MIXTRAL, "--quantize", "fp8", "--dtype", "bfloat16", "--env", env, *extra,
                         "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


def _quant008(result: dict[str, Any], kind: str = "failures") -> dict[str, Any]:
    return next(f for f in result[kind] if f["code"] == "QUANT008")


# -- the generated facts ---------------------------------------------------------------------------------


def test_the_hub_kernel_arrives_in_5_4_and_its_version_is_pinned_from_5_5() -> None:
    rc = load_release_constraints()
    assert rc.at("fp8_hub_kernel", "5.3.0").value is None  # type: ignore[union-attr]  # the in-file Triton matmul
    first = rc.first_where("fp8_hub_kernel", bool)
    assert first is not None and first.first == "5.4.0"
    assert first.value == {"repo": "kernels-community/finegrained-fp8", "call": "get_kernel"}
    at_517 = rc.at("fp8_hub_kernel", "5.17.0")
    assert at_517 is not None and at_517.value["call"] == "lazy_load_kernel" and at_517.first == "5.5.4"
    assert [(rc.at("fp8_kernel_version", v).value) for v in ("5.4.0", "5.5.4", "5.11.0", "5.13.1", "5.17.0")] == \
        [None, 1, 2, 3, 4]  # type: ignore[union-attr]


def test_the_installed_release_loads_the_kernel_it_is_tabulated_with() -> None:
    """The installed transformers' own files: the lazy load in finegrained_fp8.py and the pinned version."""
    root = Path(transformers.__file__).parent
    rc = load_release_constraints()
    fact = rc.at("fp8_kernel_version", transformers.__version__)
    assert fact is not None and fact.value is not None
    assert 'lazy_load_kernel("finegrained-fp8")' in (root / "integrations" / "finegrained_fp8.py").read_text()
    mapping = f'"finegrained-fp8": {{"repo_id": "kernels-community/finegrained-fp8", "version": {fact.value}}}'
    assert mapping in (root / "integrations" / "hub_kernels.py").read_text()


# -- the rule --------------------------------------------------------------------------------------------


def test_without_kernels_fp8_fails_and_says_what_to_install_and_fetch(cli: Any) -> None:
    code, result = _check(cli, BARE)
    assert code == 1
    finding = _quant008(result)
    assert "kernels>=0.18.2,<0.19.0 (not installed)" in finding["message"]
    assert "kernels-community/finegrained-fp8 (v4)" in finding["message"]
    assert "transformers 5.5.4 integrations/finegrained_fp8.py:76" in finding["message"]
    assert finding["fix"] == f"pip install 'kernels>=0.18.2,<0.19.0' && fetch it once on the target: {FETCH_V4}"


def test_the_window_is_the_target_releases(cli: Any) -> None:
    """transformers 5.17.0 (the H200 run's release) accepts kernels 0.16.x only (utils/import_utils.py:154)."""
    _code, result = _check(cli, BARE, "--assume", "transformers==5.17.0")
    assert _quant008(result)["fix"].startswith("pip install 'kernels>=0.16.0,<0.17.0' && ")


def test_kernels_outside_the_window_fails(cli: Any) -> None:
    _code, result = _check(cli, CACHED, "--assume", "kernels==0.17.0")
    assert "kernels>=0.18.2,<0.19.0 (installed 0.17.0)" in _quant008(result)["message"]


def test_kernel_cached_by_commit_only_fails_offline_and_passes_with_allow_download(cli: Any) -> None:
    """Offline, kernels 0.16+ finds version 4 only through refs/v4; a snapshot fetched by commit has no ref."""
    code, result = _check(cli, UNCACHED)
    assert code == 1
    finding = _quant008(result)
    assert "which offline `kernels` cannot resolve to v4" in finding["message"]
    assert finding["fix"] == f"fetch it once on the target: {FETCH_V4}"
    code, result = _check(cli, UNCACHED, "--allow-download")
    assert code == 0 and not any(f["code"] == "QUANT008" for f in result["failures"])
    assert "downloads it at the first forward" in _quant008(result, "warnings")["message"]


def test_kernel_in_the_cache_passes(cli: Any) -> None:
    code, result = _check(cli, CACHED)
    assert code == 0
    assert not any(f["code"] == "QUANT008" for f in result["failures"] + result["warnings"])


def test_before_5_4_no_kernel_is_needed(cli: Any) -> None:
    _code, result = _check(cli, BARE, "--assume", "transformers==5.3.0")
    assert not any(f["code"] == "QUANT008" for f in result["failures"] + result["warnings"])


def test_fp8_is_a_candidate_only_where_the_kernel_is_usable() -> None:
    model = resolve_model(MIXTRAL)
    for env_file, allow, planned in ((BARE, False, False), (UNCACHED, False, False), (UNCACHED, True, True),
                                     (CACHED, False, True)):
        env = load_environment(Path(env_file))
        cc = env.gpu_list[0].compute_capability
        assert ("fp8" in ready_quantizations(env, cc, "gpu", allow_download=allow)) is planned, env_file  # type: ignore[arg-type]
        rec = make_plan(model, env, PlanRequest(allow_download=allow))
        chosen = rec.chosen.candidate.quantization if rec.chosen else None
        assert (chosen == "fp8") is planned, (env_file, allow)


def test_doctor_says_the_same(cli: Any) -> None:
    env = load_environment(Path(BARE))
    rows = {name: (status, value, fix) for name, status, value, fix in doctor_rows(env, env.gpu_list[0].compute_capability)}  # type: ignore[arg-type]
    status, value, fix = rows["fp8"]
    assert status == "info" and "kernels>=0.18.2,<0.19.0 (not installed)" in value
    assert "kernels-community/finegrained-fp8 (v4)" in value and fix.endswith(FETCH_V4)
    _code, out, _err = cli("doctor", "--env", CACHED, "--format", "json")
    section = next(s for s in json.loads(out)["sections"] if s["title"] == "Quantization methods")
    item = next(i for i in section["items"] if i["name"] == "fp8")
    assert item["status"] == "ok" and "kernels 0.18.2" in item["value"]
    assert "kernels-community/finegrained-fp8 (v4)" in item["value"]


# -- the probe: the cache kernels reads ------------------------------------------------------------------


def _snapshot(root: Path, folder: str, commit: str, *refs: str) -> None:
    (root / folder / "snapshots" / commit / "build").mkdir(parents=True)
    (root / folder / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (root / folder / "refs" / ref).write_text(commit)


def test_cache_listing_names_each_ref_with_a_snapshot(tmp_path: Path) -> None:
    _snapshot(tmp_path, "kernels--kernels-community--finegrained-fp8", "a" * 40, "v4", "main")
    _snapshot(tmp_path, "kernels--kernels-community--deep-gemm", "b" * 40)  # fetched by commit: no ref
    _snapshot(tmp_path, "models--kernels-community--flash-attn2", "c" * 40, "v3")  # the legacy layout
    _snapshot(tmp_path, "models--openai-community--gpt2", "d" * 40, "main")  # a model, not a kernel
    (tmp_path / "kernels--kernels-community--finegrained-fp8" / "refs" / "v3").write_text("e" * 40)  # snapshot gone
    assert cached_hub_kernels(tmp_path) == [
        f"kernels-community/deep-gemm@{'b' * 40}", "kernels-community/finegrained-fp8@main",
        "kernels-community/finegrained-fp8@v4", "kernels-community/flash-attn2@v3",
    ]
    assert cached_hub_kernels(tmp_path / "missing") == []


def test_cache_root_follows_kernels_then_huggingface_hub() -> None:
    assert kernels_cache_root({"KERNELS_CACHE": "/k", "HF_HUB_CACHE": "/h"}) == Path("/k")
    assert kernels_cache_root({"HF_HUB_CACHE": "/h", "HF_HOME": "/home"}) == Path("/h")
    assert kernels_cache_root({"HF_HOME": "/home"}) == Path("/home/hub")


@pytest.mark.parametrize("installed", [True, False])
def test_probe_records_the_cache_with_the_kernels_package(installed: bool) -> None:
    versions = {"kernels": "0.18.2"} if installed else {}
    libs = probe_libraries(import_checks=False, versions=versions.get,
                           hub_cache=lambda: ["kernels-community/finegrained-fp8@v4"])
    details = libs["kernels"].details
    assert (details.get("hub_cache") == ["kernels-community/finegrained-fp8@v4"]) is installed
