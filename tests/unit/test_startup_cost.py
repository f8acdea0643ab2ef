"""Issue 27: what a command's start costs. A command imports its own modules only, the `kernels` import check
does not pay for torch, no NVML library means no pynvml import, and the Hub kernel cache is read without
huggingface_hub's cache scanner, each giving the answer the slower path gave."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.io import analysis_cache
from advisor.probe import kernels as probe_kernels
from advisor.probe.nvml import probe_nvml
from advisor.probe.packages import LIBRARIES

ROOT = Path(__file__).resolve().parents[2]

_WRAPPER = """
import json, sys
from advisor.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def _modules_after(cache: Path, *argv: str) -> tuple[int, set[str]]:
    env = {**os.environ, analysis_cache.CACHE_DIR_ENV: str(cache)}
    env.pop(analysis_cache.NO_CACHE_ENV, None)
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    line = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, done.stderr[-2000:]
    found = json.loads(line[-1].removeprefix("MODULES "))
    return int(found["code"]), set(found["modules"])


# what `recommend` on a shipped model never needs: other commands, other reports, the Hub cache scanner
NOT_FOR_RECOMMEND = ("advisor.cli.bench", "advisor.cli.smoke", "advisor.cli.tune", "advisor.cli.matrix",
                     "advisor.cli.doctor", "advisor.prove.bench", "advisor.prove.tune", "advisor.prove.onnx",
                     "advisor.prove.smoke", "advisor.plan.doctor_report", "advisor.matrix.history",
                     "huggingface_hub.utils._cache_manager")


def test_recommend_imports_no_other_commands_machinery(tmp_path: Path) -> None:
    code, modules = _modules_after(tmp_path, "recommend", "meta-llama/Meta-Llama-3-8B", "--cpu", "--format", "json")
    assert code in (0, 1)
    assert "advisor.cli.recommend" in modules  # the wrapper saw the command run
    assert sorted(m for m in NOT_FOR_RECOMMEND if m in modules) == []


def test_doctor_still_gets_its_report_module(tmp_path: Path) -> None:
    code, modules = _modules_after(tmp_path, "doctor", "--format", "json")
    assert code in (0, 1) and "advisor.plan.doctor_report" in modules


def test_kernels_is_checked_without_importing_torch_first() -> None:
    """The check spends no torch import on `kernels` because its import needs none: if a release of kernels
    starts importing torch at import time, this fails and the comment in packages.py is wrong."""
    pytest.importorskip("kernels")
    spec = next(s for s in LIBRARIES if s.distribution == "kernels")
    assert spec.needs_torch is False
    done = subprocess.run([sys.executable, "-c", "import sys, kernels; print('torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux") or _nvml_library_loads(), reason="needs a Linux box without NVML")
def test_no_nvml_library_gives_nvmlinits_own_reason_without_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pytest.skip("NVML initialised here")
    except pynvml.NVMLError as exc:
        expected = f"no NVIDIA driver found (nvmlInit failed: {exc})"
    done = subprocess.run([sys.executable, "-c", "import json, sys\nfrom advisor.probe.nvml import probe_nvml\n"
                           "r = probe_nvml()\nprint(json.dumps([r.gpus.reason, 'pynvml' in sys.modules]))"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout) == [expected, False]
    assert probe_nvml().driver.nvml == expected


def test_hub_kernel_cache_read_agrees_with_huggingface_hubs_scanner(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants, scan_cache_dir

    cached, partial = probe_kernels.HUB_KERNELS[0], probe_kernels.HUB_KERNELS[-1]
    for repo, files in ((cached, ["build/x.py"]), (partial, [])):
        snap = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
        snap.mkdir(parents=True)
        (tmp_path / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
        (tmp_path / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("0123abcd")
        for name in files:
            blob = tmp_path / f"models--{repo.replace('/', '--')}" / "blobs" / "b1"
            blob.parent.mkdir(exist_ok=True)
            blob.write_text("x")
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            (snap / name).symlink_to(blob)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    scanned = {r.repo_id for r in scan_cache_dir(tmp_path).repos if r.size_on_disk > 0}
    assert probe_kernels._cached_hub_kernels() == [r for r in probe_kernels.HUB_KERNELS if r in scanned] == [cached]


def test_the_simulator_stamp_kept_in_the_cache_is_the_code_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.estimate import adapter

    monkeypatch.setenv(analysis_cache.CACHE_DIR_ENV, str(tmp_path))
    fresh = adapter._code_stamp(Path(adapter.__file__).parent)
    assert adapter._simulator_stamp.__wrapped__(False) == fresh and not any(tmp_path.rglob("*.json"))  # --no-cache
    assert adapter._simulator_stamp.__wrapped__(True) == fresh and any(tmp_path.rglob("*.json"))  # computed, kept
    assert adapter._simulator_stamp.__wrapped__(True) == fresh  # read back


def test_the_stamp_reads_code_not_prose() -> None:
    from advisor.estimate.adapter import _code_text

    source = ('"""module doc"""\nimport os  # a comment \u00e9\n\n\ndef f(x):  # c\n    """doc\n    more"""\n'
              '    s = "# not a comment"\n    return x  # tail\n\n\nclass A:\n    "one"\n    y = 1\n').encode()
    assert _code_text(source) == b'import os\ndef f(x):\n    s = "# not a comment"\n    return x\nclass A:\n    y = 1'
    assert _code_text(source.replace(b"y = 1", b"y = 2")) != _code_text(source)


_STAMP_ELSEWHERE = """
import ast, hashlib, io, sys, tokenize
from pathlib import Path
path = Path(sys.argv[1])
tree = ast.parse(path.read_text())
keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name in ("_code_text", "_code_stamp"))
        or (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "_STAMPED" for t in n.targets))]
scope = {"ast": ast, "hashlib": hashlib, "io": io, "tokenize": tokenize, "Path": Path}
exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), scope)
print(scope["_code_stamp"](path.parent))
"""


@pytest.mark.parametrize("minor", [10, 12, 13])
def test_the_simulator_stamp_is_the_same_on_other_pythons(minor: int) -> None:
    """The GPU machine runs Python 3.12: a stamp that differed there (it hashed `ast.dump`, whose fields change
    between versions) made every shipped formula stale and every shipped model import torch to simulate."""
    import shutil

    from advisor.estimate import adapter

    found = sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python"))  # pyenv's shims need a version set
    other = str(found[-1]) if found else shutil.which(f"python3.{minor}")
    if other is None:
        pytest.skip(f"no python3.{minor} here")
    done = subprocess.run([other, "-c", _STAMP_ELSEWHERE, adapter.__file__], capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip(f"python3.{minor} did not run: {done.stderr[-200:]}")
    assert done.stdout.strip() == adapter._code_stamp(Path(adapter.__file__).parent)
