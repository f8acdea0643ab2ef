"""bitsandbytes' devices, backends and native library per release, as read at its tags (issue 11).

Sources (bitsandbytes-foundation/bitsandbytes; every row of data/bitsandbytes.json names its own):
- CUDA floor: 0.46.0 docs/source/installation.mdx:19 "Compute Capability 5.0+"; 0.48.0 :33 "6.0+" and :45
  "Maxwell support is not included in PyPI distributions from v0.48.0".
- LLM.int8 int8 tensor cores: 0.45.0 bitsandbytes/cuda_specs.py:15 `highest_compute_capability >= (7, 5)`.
- CPU official from 0.48.0 (installation.mdx:5); ROCm library prefix from 0.46.0 (cextension.py:25), a preview
  until 0.50.0 (0.49.0 installation.mdx:186; 0.50.0 installation.mdx:5 "official support for ... AMD GPUs").
- Library name: 0.46.0 cuda_specs.py:48 `major * 10 + minor`; 0.50.0 cuda_specs.py:52 `{major}{minor}`; 0.50.0
  cextension.py:28 same-major fallback; 0.50.0 cextension.py:38 BNB_ROCM_VERSION.
`scripts/check_bitsandbytes_sources.py CLONE` re-checks each quote against a clone (no network in tests).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from advisor.knowledge import data_dir, version_matches
from advisor.knowledge.bitsandbytes import bnb_fact, load_bnb_facts
from advisor.probe.packages import _BITSANDBYTES, run_import_check

ROOT = Path(__file__).resolve().parents[2]
LLAMA = "meta-llama/Llama-3.2-1B"
RELEASES = [Version(v) for v in ("0.43.0", "0.44.1", "0.45.5", "0.46.0", "0.47.0", "0.48.2", "0.49.2", "0.50.1")]


def test_every_row_cites_a_tag_inside_its_range_and_ranges_do_not_overlap() -> None:
    rows = load_bnb_facts(data_dir())
    assert rows
    for row in rows:
        assert row.sources or row.reproduction, row
        if row.reproduction is not None:  # a run of the wheels: the file it wrote holds a release the row covers
            ran = json.loads((ROOT / row.reproduction.output).read_text())["results"]
            assert any(Version(r["version"]) in SpecifierSet(row.covers) for r in ran), (row.fact, row.covers)
        for source in row.sources:
            assert source["repo"] == "bitsandbytes-foundation/bitsandbytes"
            assert source["line"] > 0 and source["file"] and source["quote"]
            assert Version(source["tag"]) in SpecifierSet(row.covers), (row.fact, row.covers, source["tag"])
    for fact in {r.fact for r in rows}:
        for release in RELEASES:
            covering = [r for r in rows if r.fact == fact and version_matches(str(release), r.covers)]
            assert len(covering) <= 1, (fact, release)


def test_the_facts_per_release() -> None:
    root = data_dir()
    assert [bnb_fact(root, "cuda_min_cc", v).value for v in ("0.45.5", "0.47.0", "0.48.0", "0.50.1")] == [
        "5.0", "5.0", "6.0", "6.0"]
    assert [bnb_fact(root, "rocm", v).value for v in ("0.45.5", "0.46.0", "0.49.2", "0.50.0")] == [
        "none", "preview", "preview", "official"]
    assert [bnb_fact(root, "cpu", v).value for v in ("0.45.5", "0.46.0", "0.47.0", "0.48.0")] == [
        "none", "preview", "preview", "official"]
    assert bnb_fact(root, "int8_fast_cc", "0.50.1").value == "7.5"
    assert bnb_fact(root, "cuda_min_cc", None).value == "6.0"  # not installed: the newest release's rule
    assert bnb_fact(root, "cuda_min_cc", "0.44.1").verified is False  # the docs state no pip floor then


def _quant004(cli: Any, *args: str) -> list[dict[str, Any]]:
    _, out, _ = cli("check", LLAMA, "--quantize", "8bit", "--format", "json", *args)
    result = json.loads(out)
    return [f for f in result["failures"] + result["warnings"] if f["code"] in ("QUANT004", "QUANT005")]


def test_rocm_by_release(cli: Any) -> None:
    old = _quant004(cli, "--gpu", "MI300X", "--assume", "bitsandbytes==0.45.5")
    assert old[0]["severity"] == "fail" and "no ROCm library" in old[0]["message"]
    assert "0.45.0 bitsandbytes/cextension.py:22" in old[0]["message"]
    preview = _quant004(cli, "--gpu", "MI300X", "--assume", "bitsandbytes==0.48.0")
    assert preview[0]["severity"] == "warn" and "preview" in preview[0]["message"]
    assert _quant004(cli, "--gpu", "MI300X", "--assume", "bitsandbytes==0.50.1") == []


def test_cpu_by_release(cli: Any) -> None:
    old = _quant004(cli, "--cpu", "--assume", "bitsandbytes==0.45.5")
    assert old[0]["severity"] == "fail" and "reproduced: docs/knowledge/bnb-cpu-tf5.25.0.json" in old[0]["message"]
    early = _quant004(cli, "--cpu", "--assume", "bitsandbytes==0.47.0")  # issue 28's audit: it runs on the CPU
    assert [f["severity"] for f in early] == ["warn"] and "before its official CPU backend" in early[0]["message"]
    assert [f["severity"] for f in _quant004(cli, "--cpu", "--assume", "bitsandbytes==0.48.0")] == ["warn"]
    _, out, _ = cli("check", LLAMA, "--quantize", "4bit", "--format", "json", "--cpu", "--assume",
                    "bitsandbytes==0.46.1")
    four = [f for f in json.loads(out)["failures"] if f["code"] == "QUANT004"]
    assert four and "does not load 4-bit on the CPU" in four[0]["message"]


def test_cpu_rows_agree_with_the_wheels_run() -> None:
    """data/bitsandbytes.json's CPU rows say what scripts/check_bnb_cpu.py saw each wheel do."""
    ran = json.loads((ROOT / "docs" / "knowledge" / "bnb-cpu-tf5.25.0.json").read_text())["results"]
    for result in ran:
        row = bnb_fact(data_dir(), "cpu", result["version"])
        assert row is not None
        assert (row.value != "none") == (result["op_8bit"] == result["op_4bit"] == "runs"), result["version"]
        four = bnb_fact(data_dir(), "cpu_4bit_load", result["version"])
        loads = result["load_in_4bit"] == "runs" or result["load_in_4bit"].startswith("ImportError")  # below the floor
        assert (four is not None and four.value == "none") == (not loads and row.value != "none"), result["version"]


def _env_with_cc(tmp_path: Path, major: int, minor: int, bnb: str) -> Path:
    """The V100 snapshot with another compute capability and bitsandbytes release (hardware faked only as data)."""
    env = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "envs" / "v100_bnb.json").read_text())
    env["gpus"][0]["compute_capability"] = {"major": major, "minor": minor}
    env["libraries"]["bitsandbytes"]["version"] = bnb
    path = tmp_path / f"cc{major}{minor}_bnb{bnb}.json"
    path.write_text(json.dumps(env))
    return path


def test_cuda_floor_by_release(cli: Any, tmp_path: Path) -> None:
    """A Maxwell card (5.2): fine for 0.47, refused from 0.48; Kepler (3.7) under 0.44 is refused as unverified."""
    assert not [f for f in _quant004(cli, "--env", str(_env_with_cc(tmp_path, 5, 2, "0.47.0")))
                if f["code"] == "QUANT004"]
    new = [f for f in _quant004(cli, "--env", str(_env_with_cc(tmp_path, 5, 2, "0.48.0"))) if f["code"] == "QUANT004"]
    assert new[0]["severity"] == "fail" and ">= 6.0" in new[0]["message"]
    assert "0.48.0 docs/source/installation.mdx:33" in new[0]["message"]
    kepler = [f for f in _quant004(cli, "--env", str(_env_with_cc(tmp_path, 3, 7, "0.44.1"))) if f["code"] == "QUANT004"]
    assert "unverified" in kepler[0]["message"]


def test_int8_slow_path_cites_has_imma(cli: Any) -> None:
    slow = [f for f in _quant004(cli, "--gpu", "V100", "--assume", "bitsandbytes==0.48.0") if f["code"] == "QUANT005"]
    assert slow and "installation.mdx:12" in slow[0]["message"]
    assert not [f for f in _quant004(cli, "--gpu", "T4", "--assume", "bitsandbytes==0.48.0") if f["code"] == "QUANT005"]


# --- the probe's native-library check, run in a child against a fake bitsandbytes and a fake torch/version.py ---

def _fake_site(tmp_path: Path, bnb: str, libs: list[str], *, cuda: str | None = None, hip: str | None = None,
               real_lib: bool = False) -> Path:
    site = tmp_path / "site"
    (site / "bitsandbytes").mkdir(parents=True)
    (site / "bitsandbytes" / "__init__.py").write_text("raise ImportError('never imported by the probe')\n")
    info = site / f"bitsandbytes-{bnb}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bitsandbytes\nVersion: {bnb}\n")
    for name in libs:
        target = site / "bitsandbytes" / name
        if real_lib:  # any real shared library loads with ctypes
            import ctypes.util

            found = ctypes.util.find_library("m")
            assert found is not None
            source = next(p for p in (Path("/lib/x86_64-linux-gnu") / found, Path("/usr/lib") / found,
                                      Path("/lib64") / found, Path("/usr/lib/x86_64-linux-gnu") / found) if p.exists())
            shutil.copy(source, target)
        else:
            target.write_bytes(b"not a shared library")
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("raise ImportError('never imported by the probe')\n")
    (site / "torch" / "version.py").write_text(f"cuda = {cuda!r}\nhip = {hip!r}\nxpu = None\n")
    return site


def _probe(monkeypatch: pytest.MonkeyPatch, site: Path) -> tuple[Any, dict[str, Any]]:
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.delenv("BNB_CUDA_VERSION", raising=False)
    monkeypatch.delenv("BNB_ROCM_VERSION", raising=False)
    check = run_import_check(_BITSANDBYTES)
    return check, dict(check.details)


def test_050_falls_back_to_a_packaged_library_of_the_same_major(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.50.0 cextension.py:28: torch CUDA 12.9 with only cuda128 packaged loads cuda128; 0.49 would not."""
    check, details = _probe(monkeypatch, _fake_site(tmp_path, "0.50.1", ["libbitsandbytes_cuda128.so",
                                                                         "libbitsandbytes_cuda130.so"], cuda="12.9"))
    assert details["library"] == "libbitsandbytes_cuda128.so" and details["native_library"] == "unloadable"
    assert check.ok is False


def test_049_needs_the_exact_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check, details = _probe(monkeypatch, _fake_site(tmp_path, "0.49.2", ["libbitsandbytes_cuda128.so"], cuda="12.9"))
    assert details["library"] == "libbitsandbytes_cuda129.so" and details["native_library"] == "missing"
    assert check.ok is False and "not in this bitsandbytes build" in (check.error or "")


def test_rocm_library_names_by_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROCm 7.1: 0.46-0.49 name it major*10+minor (rocm71, and 7.10 would be rocm80); 0.50 <major><minor>."""
    _, details = _probe(monkeypatch, _fake_site(tmp_path / "a", "0.49.0", [], hip="7.10.12345"))
    assert details["library"] == "libbitsandbytes_rocm80.so"
    _, details = _probe(monkeypatch, _fake_site(tmp_path / "b", "0.50.0", [], hip="7.10.12345"))
    assert details["library"] == "libbitsandbytes_rocm710.so"
    check, details = _probe(monkeypatch, _fake_site(tmp_path / "c", "0.45.5", [], hip="6.3.1"))
    assert details["native_library"] == "missing" and "no ROCm library" in (check.error or "")


def test_cpu_library_really_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check, details = _probe(monkeypatch, _fake_site(tmp_path, "0.48.0", ["libbitsandbytes_cpu.so"], real_lib=True))
    assert check.ok is True and details["native_library"] == "loaded" and details["backend"] == "CPU"


def test_quant_methods_row_agrees_with_the_newest_release() -> None:
    """data/quant_methods.json states bitsandbytes' floor for the newest release; it must be the table's."""
    methods = json.loads((data_dir() / "quant_methods.json").read_text())["methods"]
    row = next(m for m in methods if m["key"] == "bitsandbytes")
    assert row["min_cc"] == bnb_fact(data_dir(), "cuda_min_cc", None).value
    assert "cpu from bitsandbytes 0.46, official from 0.48" in row["device"] and bnb_fact(data_dir(), "cpu", "0.48.0").value == "official"
