"""Snapshots round-trip; target options resolve or fail with one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.errors import EnvironmentFileError, UnknownGpuError, UsageError
from advisor.facts import ComputeCapability, Environment, Unavailable
from advisor.probe.target import TargetSpec, load_environment, resolve_target, save_environment

ENVS = Path(__file__).resolve().parents[1] / "fixtures" / "envs"


def test_unavailable_is_falsy_and_explains() -> None:
    value = Unavailable(reason="NVML says no")
    assert not value
    assert "NVML says no" in str(value)


def test_compute_capability_compares_as_tuple_not_float() -> None:
    assert ComputeCapability.parse("8.9") > (8, 6)
    assert ComputeCapability.parse("10.0") > (9, 0)  # as floats "10.0" < "9.0" would be wrong as strings
    assert ComputeCapability.parse("7.5") < (8, 0)


@pytest.mark.parametrize("name", sorted(p.stem for p in ENVS.glob("*.json")))
def test_fixture_profiles_round_trip(name: str, tmp_path: Path) -> None:
    env = load_environment(ENVS / f"{name}.json")
    out = tmp_path / "copy.json"
    save_environment(env, out)
    assert load_environment(out) == env


def test_gpu_names_are_case_insensitive_and_repeatable() -> None:
    env = resolve_target(TargetSpec(gpus=["a100-80gb", "A100-80GB"]))
    assert [g.name for g in env.gpu_list] == ["A100-80GB", "A100-80GB"]
    assert env.gpu_list[0].dtypes.bf16 is True  # type: ignore[union-attr]
    assert env.gpu_list[0].memory_total_bytes == 81920 * 1024**2


def test_t4_has_no_native_bf16_but_fp16() -> None:
    env = resolve_target(TargetSpec(gpus=["T4"]))
    dtypes = env.gpu_list[0].dtypes
    assert dtypes.fp16 and not dtypes.bf16 and not dtypes.tf32  # type: ignore[union-attr]
    assert env.torch.sdpa_backends["flash"].usable is False  # type: ignore[union-attr]
    assert "8.0" in env.torch.sdpa_backends["flash"].reason  # type: ignore[union-attr]


def test_unknown_gpu_lists_the_known_ones() -> None:
    with pytest.raises(UnknownGpuError, match="known GPUs: T4"):
        resolve_target(TargetSpec(gpus=["GTX-9999"]))


def test_cpu_target_has_no_gpus() -> None:
    env = resolve_target(TargetSpec(cpu=True))
    assert env.gpu_list == ()


@pytest.mark.parametrize("bad", ["flash-attn", "flash-attn=2.8", "flash-attn==", "torch==notaversion"])
def test_assume_needs_dist_equals_version(bad: str) -> None:
    with pytest.raises(UsageError, match="--assume"):
        resolve_target(TargetSpec(cpu=True, assume=[bad]))


def test_assume_and_without_change_the_library_set() -> None:
    env = resolve_target(TargetSpec(gpus=["A100-80GB"], assume=["flash-attn==2.8.3"], without=["accelerate"]))
    assert env.library("flash-attn").installed and env.library("flash-attn").version == "2.8.3"
    assert not env.library("accelerate").installed


def test_two_targets_at_once_is_an_error() -> None:
    with pytest.raises(UsageError, match="choose one target"):
        resolve_target(TargetSpec(gpus=["T4"], cpu=True))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a snapshot"),
        ('{"schema_version": 99, "host": {}}', "schema_version 99"),
        ('{"schema_version": 1, "host": {"os": "x"}}', "host"),
    ],
)
def test_bad_env_files_fail_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "env.json"
    path.write_text(content)
    with pytest.raises(EnvironmentFileError, match=message) as info:
        load_environment(path)
    assert "\n" not in str(info.value)


def test_missing_env_file(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentFileError, match="no such file"):
        load_environment(tmp_path / "nope.json")


def test_doctor_json_is_accepted_as_an_env_file(tmp_path: Path) -> None:
    env = load_environment(ENVS / "t4_plain.json")
    path = tmp_path / "doctor.json"
    path.write_text(json.dumps({"environment": env.model_dump(mode="json"), "schema_version": 1}))
    assert load_environment(path) == env


def test_snapshot_is_frozen() -> None:
    env = load_environment(ENVS / "cpu_only.json")
    with pytest.raises(Exception):
        env.source = "probe"  # type: ignore[misc]
    assert isinstance(env, Environment)
