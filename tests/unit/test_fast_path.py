"""Issue 14: recommend/check on a shipped model or a config seen before import neither torch nor transformers,
the torch build read from files matches a live import, and the shipped precomputation matches a fresh count."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.facts import ComputeCapability, TorchInfo, Unavailable
from advisor.io import analysis_cache
from advisor.knowledge.installed import installed_version
from advisor.model.analysis import _release_value, count_key, counting_version, precomputed, stored_releases
from advisor.probe import collect_environment
from advisor.probe.torch_static import TorchBuild, read_torch_build, static_torch_info, visible_device_count

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"

# Runs the real CLI in a fresh interpreter and reports, after it, which heavy modules were imported.
_WRAPPER = """
import json, sys
from advisor.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
sys.stderr.write("\\nIMPORTED " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def _run(cache: Path, *argv: str) -> dict[str, Any]:
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    line = [x for x in done.stderr.splitlines() if x.startswith("IMPORTED ")]
    assert line, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(line[-1].removeprefix("IMPORTED "))
    result["stdout"] = done.stdout
    return result


def _warm_if_other_release(cache: Path, *argv: str) -> None:
    """The shipped attention flags are for the releases that made them; another release asks its classes once."""
    if installed_version() not in stored_releases():
        _run(cache, *argv)


@pytest.mark.parametrize(
    "argv",
    [
        ("recommend", "meta-llama/Meta-Llama-3-8B", "--cpu"),
        ("recommend", "meta-llama/Meta-Llama-3-8B"),
        ("recommend", "meta-llama/Llama-3.1-70B", "--gpu", "A100-80GB", "--gpu", "A100-80GB", "--format", "json"),
        ("recommend", "google-t5/t5-base", "--env", str(ENVS / "t4_plain.json")),
        ("check", "gpt2", "--cpu", "--dtype", "float32"),
        ("check", "meta-llama/Llama-3.2-1B"),
    ],
    ids=["recommend-cpu", "recommend-this-machine", "recommend-two-gpus", "recommend-env-file", "check-cpu",
         "check-this-machine"],
)
def test_shipped_models_are_planned_without_torch_or_transformers(tmp_path: Path, argv: tuple[str, ...]) -> None:
    _warm_if_other_release(tmp_path, *argv)
    result = _run(tmp_path, *argv)
    assert result["code"] in (0, 1) and result["stdout"]
    assert result["heavy"] == [], f"{' '.join(argv)} imported {result['heavy']}"


def test_a_quantized_plan_imports_nothing_heavy(tmp_path: Path) -> None:
    """The quantization_config is the minimal mapping emit.bnb_config writes (issue 14 item 8): no transformers."""
    argv = ("recommend", "meta-llama/Meta-Llama-3-8B", "--env", str(ENVS / "t4_bnb_fa2.json"), "--format", "json")
    first = _run(tmp_path, *argv)
    assert first["heavy"] == []
    second = _run(tmp_path, *argv)
    assert second["heavy"] == []
    assert _plan(second) == _plan(first) and "quantization_config" in _plan(second)[1]


def _plan(result: dict[str, Any]) -> tuple[Any, Any]:
    """The parts of a recommendation that do not depend on the RAM free at that moment."""
    data = json.loads(result["stdout"])
    return data["model"], data["from_pretrained"]


def test_a_config_seen_before_is_not_counted_again(
    tmp_path: Path, tiny_llama: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    code, out, err = cli("recommend", str(tiny_llama), "--cpu", "--format", "json", "--no-cache")
    assert code == 0, err
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.json"))  # --no-cache wrote nothing
    code, out, _ = cli("recommend", str(tiny_llama), "--cpu", "--format", "json")  # the first run with the cache
    assert len(list((tmp_path / "v1" / "param-count").glob("*.json"))) == 1  # (LlamaForCausalLM's flags are shipped)
    again = _run(tmp_path, "recommend", str(tiny_llama), "--cpu", "--format", "json")
    assert again["heavy"] == []
    assert _plan(again) == _plan({"stdout": out}) and _plan(again)[0]["param_count_method"] == "meta-device"


def test_a_second_doctor_reuses_the_live_torch_probe(tmp_path: Path) -> None:
    first = _run(tmp_path, "doctor", "--format", "json")
    assert "torch" in first["heavy"]  # the live probe imports torch once per install, driver and GPU set
    second = _run(tmp_path, "doctor", "--format", "json")
    assert second["heavy"] == []
    facts = [json.loads(r["stdout"])["environment"] for r in (first, second)]
    assert facts[0]["torch"] == facts[1]["torch"] and facts[0]["gpus"] == facts[1]["gpus"]
    uncached = _run(tmp_path, "doctor", "--format", "json", "--no-cache")
    assert "torch" in uncached["heavy"]


# -- the shipped precomputation -----------------------------------------------------------------------


def test_every_shipped_model_is_precomputed_by_the_current_counting_code() -> None:
    from advisor.knowledge import load_knowledge

    table = precomputed()
    assert table.get("counting_version") == counting_version(), "run scripts/precompute_models.py"
    for shipped in load_knowledge().models:
        config = dict(shipped.config)
        architecture = (config.get("architectures") or [None])[0]
        digest = analysis_cache.content_hash(count_key(config, architecture, False))
        assert digest in table["parameter_counts"], f"{shipped.hub_id}: run scripts/precompute_models.py"


@pytest.mark.parametrize("hub_id", ["openai-community/gpt2", "google-bert/bert-base-uncased", "google-t5/t5-base"])
def test_precomputed_counts_and_flags_match_a_fresh_computation(hub_id: str) -> None:
    pytest.importorskip("transformers")
    from advisor.knowledge import load_knowledge
    from advisor.model.attention_support import _read_installed
    from advisor.model.meta import count_on_meta
    from advisor.model.resolve import describe_config

    shipped = load_knowledge().shipped_model(hub_id)
    assert shipped is not None
    config = dict(shipped.config)
    architecture = (config.get("architectures") or [None])[0]
    row = precomputed()["models"][shipped.hub_id]
    release = installed_version()
    fresh = count_on_meta(copy.deepcopy(config), architecture, False)
    stored = _release_value(precomputed()["parameter_counts"][row["count_key"]], release, nearest=True)
    assert stored[:2] == list(fresh or ())[:2]
    if release in stored_releases():
        flags = _release_value(precomputed()["attention_support"][row["support_key"]], release, nearest=False)
        assert flags == _read_installed(describe_config(config, name=hub_id, source="shipped"))


def _pretend_release(folder: Path, release: str) -> Path:
    """A dist-info that makes package metadata report `release` as the installed transformers (data, not code:
    nothing imports from it; a process that did import transformers would get the real one and fail the test)."""
    info = folder / f"transformers-{release}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: transformers\nVersion: {release}\n")
    return folder


def test_the_precomputation_holds_several_releases_including_the_gpu_box() -> None:
    releases = stored_releases()
    assert {"5.17.0", "5.24.0"} <= set(releases) and len(releases) >= 5
    table = precomputed()
    for hub_id, row in table["models"].items():
        for release in releases:
            assert _release_value(table["parameter_counts"][row["count_key"]], release, nearest=False), (hub_id, release)
            if row["support_key"] is not None:
                assert _release_value(table["attention_support"][row["support_key"]], release, nearest=False), (
                    hub_id, release)


@pytest.mark.parametrize("release", stored_releases())
def test_each_stored_release_plans_a_shipped_model_without_transformers(tmp_path: Path, release: str) -> None:
    fake = _pretend_release(tmp_path / "site", release)
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    argv = ("recommend", "meta-llama/Meta-Llama-3-8B", "--cpu", "--format", "json")
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    result = json.loads([x for x in done.stderr.splitlines() if x.startswith("IMPORTED ")][-1].removeprefix("IMPORTED "))
    assert result["heavy"] == [], f"transformers {release}: imported {result['heavy']}"
    report = json.loads(done.stdout)
    from advisor.estimate import formula_store

    # the shipped formulas of this release (CPU included, issue 27) give the simulator's figure, else the closed form
    shipped = release in formula_store.shipped_table().get("releases", {})
    assert report["transformers"] == release
    assert report["chosen"]["memory"]["method"] == ("simulated" if shipped else "estimated")


# -- torch's build without importing it ---------------------------------------------------------------


def test_the_installed_torch_build_read_from_files_matches_a_live_import() -> None:
    torch = pytest.importorskip("torch")
    build = read_torch_build()
    assert isinstance(build, TorchBuild)
    assert build.version == torch.__version__.split("+")[0]
    assert (build.cuda, build.hip) == (torch.version.cuda, getattr(torch.version, "hip", None))


def test_static_and_live_probes_agree_on_this_machine() -> None:
    pytest.importorskip("torch")
    live = collect_environment(import_checks=False, cache=False)
    static = collect_environment(import_checks=False, import_torch=False)
    assert static.gpus == live.gpus
    assert isinstance(live.torch, TorchInfo) and isinstance(static.torch, TorchInfo)
    assert static.torch.model_dump(exclude={"cxx11_abi"}) == live.torch.model_dump(exclude={"cxx11_abi"})


_CUDA_VERSION_PY = """from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']
__version__ = '2.11.0+cu130'
debug = False
cuda: Optional[str] = '13.0'
git_version = '0123456789abcdef'
hip: Optional[str] = None
rocm: Optional[str] = None
xpu: Optional[str] = None
"""


def _versions(**found: str) -> Any:
    return lambda dist: found.get(dist)


def test_a_cuda_build_is_read_from_version_py_and_the_cudnn_wheel(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text(_CUDA_VERSION_PY)
    build = read_torch_build(tmp_path, _versions(torch="2.11.0+cu130", **{"nvidia-cudnn-cu13": "9.13.0.50"}))
    assert build == TorchBuild(version="2.11.0", cuda="13.0", hip=None, cudnn="9.13.0")
    info = static_torch_info(build, [ComputeCapability(major=9, minor=0)], 1)
    assert info.cuda_available is True and info.device_count == 1
    assert info.sdpa_backends["flash"].usable and info.sdpa_backends["cudnn"].usable
    assert info.flex_attention is True


def test_a_bundled_cudnn_library_gives_its_major_version(tmp_path: Path) -> None:
    (tmp_path / "version.py").write_text(_CUDA_VERSION_PY)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libcudnn.so.9").write_bytes(b"")
    build = read_torch_build(tmp_path, _versions(torch="2.11.0"))
    assert isinstance(build, TorchBuild) and build.cudnn == "9.0"


def test_missing_or_unreadable_torch_is_a_reason(tmp_path: Path) -> None:
    missing = read_torch_build(tmp_path, _versions())
    assert isinstance(missing, Unavailable) and "pip install torch" in missing.reason
    unreadable = read_torch_build(tmp_path, _versions(torch="2.11.0"))
    assert isinstance(unreadable, Unavailable) and "version.py" in unreadable.reason


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, 4), ("", 0), ("-1", 0), ("0", 1), ("0,2", 2), ("1,-1,2", 1), ("GPU-abc,GPU-def", 2), ("0,1,2,3,4,5", 4)],
)
def test_cuda_visible_devices_limits_the_count(visible: str | None, expected: int) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert visible_device_count(4, environ) == expected


def test_shipped_model_on_a_table_gpu_is_exact_without_torch(tmp_path: Path) -> None:
    """Issue 27: the GPU table's H100 lists cuDNN among its SDPA backends, which the simulator never chooses; the
    shipped formulas (fitted without it) must still answer, exactly and without importing torch."""
    done = _run(tmp_path / "cache", "recommend", "meta-llama/Meta-Llama-3-8B", "--gpu", "H100", "--format", "json")
    assert done["heavy"] == [] and done["code"] == 0
    result = json.loads(done["stdout"])
    assert result["from_pretrained"]["attn_implementation"] == "sdpa" and result["memory"]["method"] == "simulated"


@pytest.mark.parametrize(("model", "target"), [
    # bitsandbytes 8-bit and 4-bit (the snapshot's release is 5.24: its quantization rule is not the installed one)
    ("meta-llama/Llama-3.2-1B", ("--env", str(ENVS / "a100_80gb_fa2_bnb.json"), "--assume",
                                 f"transformers=={installed_version()}")),
    ("openai/whisper-small", ("--gpu", "H100")),  # log-mel features, not token ids
    ("openai/whisper-small", ("--cpu",)),
])
def test_every_figure_of_a_shipped_model_is_the_simulators_without_torch(tmp_path: Path, model: str,
                                                                          target: tuple[str, ...]) -> None:
    """Issue 27: bitsandbytes candidates and Whisper printed the closed form on every target; the shipped formulas
    (scripts/precompute_memory.py's coverage) now hold each configuration the planner prints for them."""
    from advisor.estimate import formula_store

    if installed_version() not in formula_store.shipped_table().get("releases", {}):
        pytest.skip("the shipped formulas are for the releases that made them")
    done = _run(tmp_path / "cache", "recommend", model, *target, "--format", "json")
    assert done["heavy"] == [] and done["code"] == 0
    result = json.loads(done["stdout"])
    printed = {a["label"]: a["memory"]["method"] for a in [result["chosen"], *result["alternatives"]]}
    assert printed and set(printed.values()) == {"simulated"}, printed
    if "--assume" in target:
        assert sum("bnb" in label for label in printed) >= 4, printed
