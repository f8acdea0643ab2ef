"""The data tables must load from a normal (non-editable) install of the built wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tables_load_from_an_installed_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True,
    )
    if build.returncode != 0:
        pytest.fail(f"wheel build failed: {build.stderr[-2000:]}")
    wheel = next(dist.glob("*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # torch, transformers, pydantic... come from the test interpreter's site-packages, after the wheel's own
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = (
        "import advisor.knowledge as k, advisor; kn = k.load_knowledge(); "
        "print(kn.root); print(advisor.__file__); print(len(kn.gpus.rows), len(kn.models), "
        "len(kn.shipped_attention_tables()))"
    )
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    root, module, counts = done.stdout.strip().splitlines()
    assert str(env_dir) in module, "imported the source tree, not the wheel"
    assert root.endswith("advisor/data") and str(env_dir) in root
    gpus, models, tables = map(int, counts.split())
    assert gpus >= 13 and models >= 14 and tables >= 1
    cli = subprocess.run([str(env_dir / "bin" / "advisor"), "recommend", "gpt2", "--cpu", "--format", "json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    guide = subprocess.run([str(env_dir / "bin" / "advisor"), "explain", "prefer"],  # issue 31: the guides ship
                           capture_output=True, text=True, cwd=tmp_path)
    assert guide.returncode == 0 and guide.stdout == (ROOT / "docs" / "prefer.md").read_text(), guide.stderr
