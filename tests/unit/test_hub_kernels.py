"""Issue 24 part 3: Hub kernels as a plan dimension (transformers 5.25 kernelizes every load by default).

Primary sources: transformers 5.25.0 `modeling_utils.py:4415-4423` (`elif use_kernels is None: use_kernels = True`)
and `integrations/hub_kernels.py` (the mapping, executed into data/hub_kernels.json); kernels 0.19.1
`_internals/_versions.py:78-82` (offline: `refs/v<N>` or "is not available in the local cache") and
`_internals/hf_hub.py:127-145` (online: the publisher check). Hardware is snapshot JSON (tests/fixtures/envs);
the loads are real, on the CPU, with tiny models saved by save_pretrained.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from advisor import api
from advisor.facts import Environment, HubAccess, Unavailable
from advisor.knowledge.hub_kernels import TargetDevice, hub_kernel_table, mapping_for, select
from advisor.knowledge.releases import load_release_constraints
from advisor.model.resolve import resolve_model
from advisor.plan.options import PlanRequest
from advisor.plan.recommend import make_plan
from advisor.probe.hub_access import probe_hub_access, with_reachability
from advisor.probe.target import load_environment
from advisor.rules.kernelization import hub_kernel_advice

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "tests" / "fixtures" / "envs"
UNCACHED, CACHED = (ENVS / f"h100_tf525_offline_{n}.json" for n in ("uncached", "cached"))
TF524 = ENVS / "h100_kernels_uncached.json"  # H100, transformers 5.24.0, kernels 0.18.2, no Hub access recorded
LLAMA = "meta-llama/Llama-3.2-1B"
ROTARY_OFFLINE = ("Version 2 of 'kernels-community/rotary' is not available in the local cache and Hugging Face Hub "
                  "is in offline mode")
INSTALL_ROTARY = "install_kernel('kernels-community/rotary', version=2)"


def _env(path: Path, **hub: Any) -> Environment:
    env = load_environment(path)
    if hub:
        base = env.hub or HubAccess()
        env = env.model_copy(update={"hub": base.model_copy(update=hub)})
    return env


def _kern(findings: list[Any]) -> dict[str, Any]:
    return {f.code: f for f in findings if f.code.startswith("KERN")}


# -- the facts, read from each release ----------------------------------------------------------------------


def test_use_kernels_defaults_on_only_in_5_25_and_is_a_keyword_from_4_53() -> None:
    rc = load_release_constraints()
    on = rc.at("use_kernels_default", "5.25.0")
    assert on is not None and on.value is True and on.cite() == "transformers 5.25.0 modeling_utils.py:4423"
    assert rc.at("use_kernels_default", "5.24.0").value is False  # type: ignore[union-attr]
    assert rc.at("use_kernels_default", "4.53.3").value is False  # type: ignore[union-attr]
    assert rc.at("use_kernels_default", "4.52.4").value is None  # type: ignore[union-attr]


def test_kernels_is_a_core_dependency_only_in_5_25() -> None:
    rc = load_release_constraints()
    core = rc.at("kernels_required", "5.25.0")
    assert core is not None and core.value == "<0.20,>=0.19.1"
    assert core.file == "transformers-5.25.0.dist-info/METADATA" and core.line
    assert rc.at("kernels_required", "5.24.0").value is None  # type: ignore[union-attr]  (an extra only)


def test_use_hub_kernels_reads_y_as_on_from_5_25() -> None:
    rc = load_release_constraints()
    assert rc.at("hub_kernels_env", "5.25.0").value["true"] == ["1", "on", "true", "y", "yes"]  # type: ignore[union-attr]
    assert rc.at("hub_kernels_env", "5.24.0").value["true"] == ["1", "on", "true", "yes"]  # type: ignore[union-attr]
    assert rc.at("hub_kernels_env", "4.57.6").value is None  # type: ignore[union-attr]


def test_the_cited_default_line_is_the_installed_releases_switch() -> None:
    transformers = pytest.importorskip("transformers")
    if transformers.__version__ != "5.25.0":
        pytest.skip("the citation is checked against an installed 5.25.0")
    lines = (Path(transformers.__file__).parent / "modeling_utils.py").read_text().splitlines()
    assert lines[4422 - 1].strip() == "elif use_kernels is None:" and lines[4423 - 1].strip() == "use_kernels = True"


# -- the mapping and the model's layers ---------------------------------------------------------------------


def test_the_table_holds_the_installed_releases_executed_mapping() -> None:
    transformers = pytest.importorskip("transformers")
    from advisor.knowledge.derive_worker import hub_kernel_mapping

    mapping, source = mapping_for(transformers.__version__)
    if "data/hub_kernels.json" not in source:
        pytest.skip(f"transformers {transformers.__version__} is not in data/hub_kernels.json")
    assert mapping == hub_kernel_mapping()


def test_earlier_releases_have_a_mapping_for_use_kernels_true() -> None:
    read = hub_kernel_table()["read"]
    assert "4.53.3" in read and "5.25.0" in read and "4.52.4" not in read
    assert all(row["mapping"] for release, row in read.items() if not row.get("error")), read


def test_a_real_llama_has_rope_silu_and_rmsnorm_kernel_layers(tiny_llama: Path) -> None:
    from advisor.knowledge.derive_worker import kernel_layers
    from advisor.model.meta import build_on_meta

    config = json.loads((tiny_llama / "config.json").read_text())
    layers = kernel_layers(build_on_meta(config, "LlamaForCausalLM"))
    assert layers == ["rotary_pos_emb", "SiLU", "RMSNorm"]  # the order kernelize meets them
    shipped = next(row for row in hub_kernel_table()["models"].values() if row["hub_id"] == LLAMA)
    assert shipped["layers"]["5.25.0"] == layers


def test_kernel_layers_read_here_are_the_childs(tiny_llama: Path) -> None:
    """Issue 27: once describing a config imported transformers, its kernel layers are read in this process;
    the answer must be the child's (which leaves USE_HUB_KERNELS out), or the shortcut changed a fact."""
    pytest.importorskip("transformers")
    from advisor.model import kernel_layers

    spec = resolve_model(str(tiny_llama))
    key = kernel_layers._model_key(spec)
    here = kernel_layers._read_here(key, spec)
    assert here and here == kernel_layers._read_in_child(key, spec)


def test_a_relative_of_a_shipped_model_reads_its_kernel_layers_from_the_shipped_row() -> None:
    from advisor.knowledge import load_knowledge
    from advisor.model.kernel_layers import model_layers
    from advisor.model.resolve import describe_config

    config = dict(next(m for m in load_knowledge().models if m.hub_id == LLAMA).config)
    spec = describe_config({**config, "vocab_size": config["vocab_size"] + 77}, name="fine-tune", source="folder")
    layers, source = model_layers(spec, "5.25.0", cache=False)
    shipped = next(row for row in hub_kernel_table()["models"].values() if row["hub_id"] == LLAMA)
    assert layers == shipped["layers"]["5.25.0"] and source.startswith(f"as its relative {LLAMA}")


@pytest.mark.parametrize(("layer", "device", "repo"), [
    ("rotary_pos_emb", TargetDevice("cuda", 90), ("kernels-community/rotary", "v2")),
    ("SiLU", TargetDevice("cuda", 90), ("kernels-community/activation", "v1")),
    ("RMSNorm", TargetDevice("cuda", 80), ("kernels-community/liger-kernels", "v4")),
    ("rotary_pos_emb", TargetDevice("rocm", 94), ("kernels-community/aiter-rope", "v3")),
    ("Qwen3_5GatedDeltaNet", TargetDevice("cuda", 121), ("Atlas-Inference/gdn", "531ae679ab5c13a3bf49607e1b6e6459300772e9")),
    ("Qwen3_5GatedDeltaNet", TargetDevice("cuda", 90), None),  # only GB10 (SM121)
    ("RMSNorm", TargetDevice("xpu"), None),
    ("rotary_pos_emb", TargetDevice("cpu"), None),
    ("SiLU", TargetDevice("cpu"), None),
])
def test_selection_follows_kernels_device_capability_and_mode(layer: str, device: TargetDevice,
                                                              repo: tuple[str, str] | None) -> None:
    mapping, _ = mapping_for("5.25.0")
    assert mapping is not None
    found = select(mapping, layer, device)
    assert (None if found is None else (found.repo_id, found.ref)) == repo


def test_nothing_is_kernelized_on_the_cpu_in_5_25(tiny_llama: Path) -> None:
    """The real load, offline, with the release's default: use_kernels is on, and no layer is swapped."""
    code = ("import torch, transformers, kernels; "
            f"m = transformers.AutoModelForCausalLM.from_pretrained({str(tiny_llama)!r}, dtype=torch.float32); "
            "k = kernels.get_kernelized_layers(m); print(m.use_kernels, len(k.layers), len(k.funcs))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.split() == ["True", "0", "0"]
    advice = hub_kernel_advice(_env(UNCACHED), resolve_model(LLAMA), "cpu")
    assert advice.outcome == "no-kernels" and advice.emit is None


# -- the probe ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "offline", "source"), [
    ({}, False, ""),
    ({"HF_HUB_OFFLINE": "1"}, True, "HF_HUB_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "yes"}, True, "HF_HUB_OFFLINE=yes"),
    ({"TRANSFORMERS_OFFLINE": "1"}, True, "TRANSFORMERS_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, False, "HF_HUB_OFFLINE=0"),  # the first set one decides
])
def test_offline_is_read_as_huggingface_hub_reads_it(environ: dict[str, str], offline: bool, source: str) -> None:
    hub = probe_hub_access(environ)
    assert (hub.offline, hub.offline_source) == (offline, source)
    assert isinstance(hub.reachable, Unavailable) and "--allow-download" in hub.reachable.reason


def test_the_probe_records_the_kernel_switches_and_the_snapshot_round_trips(tmp_path: Path) -> None:
    hub = probe_hub_access({"USE_HUB_KERNELS": "0", "KERNELS_CACHE": "/data/kernels", "HF_ENDPOINT": "http://h/"})
    assert (hub.use_hub_kernels, hub.kernels_cache, hub.endpoint) == ("0", "/data/kernels", "http://h")
    env = load_environment(UNCACHED).model_copy(update={"hub": hub})
    path = tmp_path / "snap.json"
    path.write_text(env.model_dump_json())
    assert load_environment(path).hub == hub
    assert load_environment(TF524).hub is None  # a snapshot from before issue 24 still loads


def test_reachability_is_one_bounded_connection_and_none_offline() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    environ = {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    assert with_reachability(probe_hub_access(environ), environ=environ).reachable is True
    server.close()
    closed = {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    assert with_reachability(probe_hub_access(closed), environ=closed, timeout=1.0).reachable is False
    offline = with_reachability(probe_hub_access({"HF_HUB_OFFLINE": "1"}))
    assert isinstance(offline.reachable, Unavailable) and "HF_HUB_OFFLINE=1" in offline.reachable.reason


# -- check: KERN001 / KERN002 / KERN003 -------------------------------------------------------------------


def _check(env: Environment, config: dict[str, Any] | None = None, model: str = LLAMA) -> api.CheckResult:
    return api.check(model, config=config or {"dtype": "bfloat16", "attn_implementation": "sdpa",
                                               "device_map": "cuda:0"}, env=env)


def test_offline_h100_without_the_kernels_fails_with_the_load_s_own_error(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "kwargs.json"
    config.write_text(json.dumps({"dtype": "bfloat16", "attn_implementation": "sdpa", "device_map": "cuda:0"}))
    code, out, err = cli("check", LLAMA, "--env", str(UNCACHED), "--config", str(config), "--format", "json")
    assert code == 1, err
    kern = next(f for f in json.loads(out)["failures"] if f["code"] == "KERN001")
    assert ROTARY_OFFLINE in kern["message"] and "use_kernels=False" in kern["fix"] and INSTALL_ROTARY in kern["fix"]


def test_use_kernels_false_passes_the_same_target() -> None:
    result = _check(_env(UNCACHED), {"dtype": "bfloat16", "attn_implementation": "sdpa", "device_map": "cuda:0",
                                      "use_kernels": False})
    assert result.ok and not _kern(result.failures + result.warnings)


def test_cached_kernels_offline_pass() -> None:
    result = _check(_env(CACHED))
    assert result.ok and not _kern(result.failures + result.warnings), result.failures


def test_online_with_the_hub_reachable_warns_about_the_publisher_check() -> None:
    result = _check(_env(UNCACHED, offline=False, offline_source="", reachable=True))
    kern = _kern(result.warnings)
    assert result.ok and "KERN002" in kern and "publisher" in kern["KERN002"].message
    assert "downloaded at the first load" in kern["KERN002"].message


def test_online_unreachable_fails_even_with_the_kernels_cached() -> None:
    result = _check(_env(CACHED, offline=False, offline_source="", reachable=False))
    kern = _kern(result.failures)
    assert "could not verify publisher trust status" in kern["KERN001"].message
    assert "HF_HUB_OFFLINE=1" in kern["KERN001"].fix


def test_online_not_checked_cached_warns_and_uncached_is_planned_as_unreachable() -> None:
    unchecked = {"offline": False, "offline_source": "",
                 "reachable": Unavailable(reason="not checked (the advisor makes no network call without "
                                                 "--allow-download)")}
    cached = _check(_env(CACHED, **unchecked))
    assert cached.ok and "HF_HUB_OFFLINE" in _kern(cached.warnings)["KERN002"].fix
    missing = _check(_env(UNCACHED, **unchecked))
    assert not missing.ok and "--allow-download" in _kern(missing.failures)["KERN001"].message


def test_5_24_is_untouched_unless_use_kernels_is_asked() -> None:
    env = _env(TF524)
    assert not _kern(_check(env).failures + _check(env).warnings)
    asked = _check(env, {"dtype": "bfloat16", "attn_implementation": "sdpa", "device_map": "cuda:0",
                         "use_kernels": True})
    kern = _kern(asked.failures)  # no Hub access recorded: reachability unknown, nothing cached
    assert "use_kernels=True" in kern["KERN001"].message and "kernels-community/rotary" in kern["KERN001"].message


def test_kwargs_without_device_map_kernelize_on_the_cpu() -> None:
    """transformers kernelizes where the weights load (no device_map: the CPU) and not again after .to("cuda")."""
    result = _check(_env(UNCACHED), {"dtype": "bfloat16", "attn_implementation": "sdpa"})
    assert result.ok and not _kern(result.failures + result.warnings)


def test_4_57_says_nothing_by_default_and_checks_use_kernels_true(cli: Any, tmp_path: Path) -> None:
    _, out, err = cli("check", LLAMA, "--env", str(UNCACHED), "--assume", "transformers==4.57.6",
                      "--assume", "kernels==0.9.0", "--dtype", "bfloat16", "--format", "json")
    result = json.loads(out)
    assert not [f for f in result["failures"] + result["warnings"] if f["code"].startswith("KERN")], err
    config = tmp_path / "kwargs.json"
    config.write_text(json.dumps({"dtype": "bfloat16", "device_map": "cuda:0", "use_kernels": True}))
    code, out, err = cli("check", LLAMA, "--env", str(UNCACHED), "--assume", "transformers==4.57.6",
                         "--assume", "kernels==0.9.0", "--config", str(config), "--format", "json")
    kern = next(f for f in json.loads(out)["failures"] if f["code"] == "KERN001")
    # 4.57's mapping names a version range (activation) or no version (liger_kernels: the branch main); offline,
    # a range cannot be resolved and the branch must be cached
    assert code == 1 and "kernels-community/liger_kernels (main)" in kern["message"]
    assert "kernels-community/activation (version >=0.1.0)" in kern["message"] and "offline mode" in kern["message"]


def test_use_kernels_before_4_53_is_a_type_error() -> None:
    env = _env(UNCACHED).model_copy(update={"libraries": {
        **_env(UNCACHED).libraries,
        "transformers": _env(UNCACHED).libraries["transformers"].model_copy(update={"version": "4.52.4"})}})
    kern = _kern(_check(env, {"dtype": "bfloat16", "use_kernels": False}).failures)
    assert "unexpected keyword argument 'use_kernels'" in kern["KERN003"].message


def test_use_hub_kernels_off_in_the_environment_turns_them_off() -> None:
    env = _env(UNCACHED, use_hub_kernels="0")
    result = _check(env)
    assert result.ok and not _kern(result.failures + result.warnings)
    plan = make_plan(resolve_model(LLAMA), env, PlanRequest(dtype="bfloat16"))
    assert plan.hub_kernels is not None and plan.hub_kernels.outcome == "disabled-env"
    assert plan.from_pretrained is not None and plan.from_pretrained["use_kernels"] is False


def test_kernels_outside_the_window_fails_every_default_load_on_5_25() -> None:
    env = _env(CACHED)
    lib = env.libraries["kernels"].model_copy(update={"version": "0.18.2"})
    env = env.model_copy(update={"libraries": {**env.libraries, "kernels": lib}})
    kern = _kern(_check(env).failures)
    assert "Kernels are not available" in kern["KERN001"].message
    cpu = env.model_copy(update={"gpus": ()})
    plan = make_plan(resolve_model(LLAMA), cpu, PlanRequest())
    assert plan.from_pretrained is not None and plan.from_pretrained["use_kernels"] is False  # the CPU too


# -- recommend: the plan's kwargs -------------------------------------------------------------------------


def test_the_offline_plan_turns_kernels_off_and_says_how_to_cache_them(cli: Any) -> None:
    code, out, err = cli("recommend", LLAMA, "--env", str(UNCACHED), "--format", "json")
    plan = json.loads(out)
    assert code == 0, err
    assert plan["from_pretrained"]["use_kernels"] is False
    assert all(o["from_pretrained"]["use_kernels"] is False for o in plan["alternatives"]
               if o["candidate"]["placement"] != "cpu")
    kernels = plan["hub_kernels"]
    assert kernels["outcome"] == "blocked" and ROTARY_OFFLINE in kernels["problem"]
    assert INSTALL_ROTARY in kernels["precache"] and "install_kernel('kernels-community/liger-kernels', version=4)" \
        in kernels["precache"]
    assert any(f["code"] == "KERN001" and f["severity"] == "info" for f in plan["findings"])
    code, out, err = cli("recommend", LLAMA, "--env", str(UNCACHED), "--format", "python")
    assert "use_kernels=False," in out


def test_the_cached_plan_keeps_the_default_and_says_the_effect_is_unmeasured() -> None:
    plan = make_plan(resolve_model(LLAMA), _env(CACHED), PlanRequest())
    assert plan.from_pretrained is not None and "use_kernels" not in plan.from_pretrained
    assert plan.hub_kernels is not None and plan.hub_kernels.outcome == "ready"
    assert plan.hub_kernels.effect.startswith("unmeasured")
    assert [n.repo for n in plan.hub_kernels.needed] == ["kernels-community/activation", "kernels-community/liger-kernels",
                                                         "kernels-community/rotary"]


def test_the_planned_kwargs_load_under_5_25(tiny_llama: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from advisor.plan.emit import to_kwargs

    plan = make_plan(resolve_model(str(tiny_llama)), _env(UNCACHED), PlanRequest(dtype="bfloat16"))
    assert plan.from_pretrained is not None and plan.from_pretrained["use_kernels"] is False
    kwargs = to_kwargs({k: v for k, v in plan.from_pretrained.items() if k != "device_map"})  # no CUDA here
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama, **kwargs)
    assert model.use_kernels is False


def test_kernels_outside_the_window_the_default_load_fails_and_the_plan_loads(tiny_llama: Path,
                                                                                tmp_path: Path) -> None:
    """A real install whose kernels is 0.18.2 (a distribution laid out as pip does, first on the path)."""
    fake = tmp_path / "site"
    (fake / "kernels").mkdir(parents=True)
    (fake / "kernels" / "__init__.py").write_text("")
    (fake / "kernels-0.18.2.dist-info").mkdir()
    (fake / "kernels-0.18.2.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kernels\nVersion: 0.18.2\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)]), "HF_HUB_OFFLINE": "1"}
    plan = subprocess.run([sys.executable, "-m", "advisor", "recommend", str(tiny_llama), "--cpu", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    kwargs = json.loads(plan.stdout)["from_pretrained"]
    assert kwargs["use_kernels"] is False, plan.stderr[-500:]
    load = ("import json, sys, transformers; from advisor.plan.emit import to_kwargs; "
            "kw = to_kwargs(json.loads(sys.argv[2])); "
            "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], **kw); print('loaded')")
    plain = {k: v for k, v in kwargs.items() if k != "use_kernels"}
    default = subprocess.run([sys.executable, "-c", load, str(tiny_llama), json.dumps(plain)], capture_output=True,
                             text=True, env=env, timeout=300, check=False)
    assert default.returncode != 0 and "Kernels are not available" in default.stderr
    planned = subprocess.run([sys.executable, "-c", load, str(tiny_llama), json.dumps(kwargs)], capture_output=True,
                             text=True, env=env, timeout=300, check=False)
    assert planned.returncode == 0 and planned.stdout.strip() == "loaded", planned.stderr[-800:]


def test_check_without_kwargs_judges_the_candidate_as_the_plan_emits_it(cli: Any) -> None:
    """`check --attn/--dtype` names a candidate, not kwargs: the plan would emit use_kernels=False for it."""
    code, out, err = cli("check", LLAMA, "--env", str(UNCACHED), "--attn", "sdpa", "--dtype", "bfloat16",
                         "--format", "json")
    result = json.loads(out)
    assert code == 0 and not [f for f in result["failures"] if f["code"].startswith("KERN")], err
