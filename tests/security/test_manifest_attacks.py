"""Issue 25, "Manifests": a manifest from the repository under test gets the rules of a config.

Each attack is a real file (a YAML alias bomb, deep nesting in both formats, a FIFO, /dev/zero, a 40 MiB file, a TOML
file of escaped keys, a million pairs) given to the real CLI. Each must end with exit 2 and one line on stderr that
names the manifest, within a deadline (a hang fails the test instead of stalling CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from advisor.fleet.manifest import MANIFEST_MAX_BYTES, MAX_PAIRS

ROOT = Path(__file__).resolve().parents[2]
TARGETS = "targets: [A100-80GB]\n"


def _refused(cli: Any, deadline: Any, path: Path, *words: str, seconds: float = 30) -> str:
    started = time.monotonic()
    with deadline(seconds):
        code, out, err = cli("check", "--manifest", str(path))
    assert code == 2 and out == "", (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error: manifest "), err
    assert "Traceback" not in err and "RecursionError" not in err
    for word in words:
        assert word in lines[0], lines[0]
    assert time.monotonic() - started < seconds
    return lines[0]


def test_a_yaml_alias_bomb_is_refused_not_expanded(cli: Any, deadline: Any, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]  # 10**10 values
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nmodels: *a9\n" + TARGETS)
    _refused(cli, deadline, path, "aliases are expanded", seconds=20)


def test_a_recursive_yaml_alias_is_refused(cli: Any, deadline: Any, tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("models: &m [gpt2, *m]\n" + TARGETS)
    _refused(cli, deadline, path, "alias", seconds=20)


def test_aliases_within_the_bound_still_work(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("kwargs: &kw {dtype: bfloat16}\nmodels:\n  - {model: gpt2, from_pretrained: *kw}\n" + TARGETS)
    code, out, err = cli("check", "--manifest", str(path))
    assert code == 2 and "field kwargs: unknown field" in err  # parsed through the alias; the schema speaks
    path.write_text("models:\n  - &m gpt2\n  - *m\n" + TARGETS)
    code, out, err = cli("check", "--manifest", str(path))
    assert code in (0, 1), err
    assert out.count("gpt2 on A100-80GB") == 2


DEEP = {
    "yaml-flow": ("deep.yaml", "models: " + "[" * 5000 + "]" * 5000 + "\n" + TARGETS),
    "yaml-block": ("block.yaml", TARGETS + "models:\n" + "".join("  " * i + "- \n" for i in range(1, 600))),
    "yaml-mapping": ("map.yaml", TARGETS + "models:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 900))),
    "toml-array": ("deep.toml", "models = " + "[" * 5000 + "]" * 5000 + "\n"),
    "toml-inline-table": ("inline.toml", "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"),
    "toml-table-header": ("header.toml", "[" + ".".join(["a"] * 3000) + "]\nx = 1\n"),
}


@pytest.mark.parametrize("case", list(DEEP))
def test_deep_nesting_is_exit_2_not_a_recursion_error(cli: Any, deadline: Any, tmp_path: Path, case: str) -> None:
    name, text = DEEP[case]
    path = tmp_path / name
    path.write_text(text)
    _refused(cli, deadline, path, "nested more than 64 levels deep")


def test_a_fifo_manifest_is_refused_without_waiting(cli: Any, deadline: Any, tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    os.mkfifo(path)
    _refused(cli, deadline, path, "FIFO", seconds=10)


def test_dev_zero_is_refused_without_reading(cli: Any, deadline: Any, tmp_path: Path) -> None:
    """/dev/zero itself and a link to it named like a manifest: exit 2 with bounded memory (it reached 2.6 GB)."""
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    rss = _peak_rss_kib(["check", "--manifest", str(link)])  # first, in a child with bounded address space
    assert rss < 400 * 1024, f"{rss} KiB of RSS"
    _refused(cli, deadline, Path("/dev/zero"), "unknown file type", seconds=10)
    _refused(cli, deadline, link, "a device", seconds=10)


_MEASURE = """
import resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))  # a regression fails, not the machine
done = subprocess.run([sys.executable, "-m", "advisor", *sys.argv[1:]], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, timeout=240)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_kib(argv: list[str]) -> int:
    """The advisor's own peak resident set, started from a small fresh interpreter: Linux carries a process's
    high-water mark across fork and exec, so a child forked from this test process would count pytest's memory."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)
    code, rss = (int(x) for x in done.stdout.split())
    assert code == 2
    return rss


def test_a_40_mib_manifest_is_refused_by_its_size(cli: Any, deadline: Any, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as handle:
        handle.write(TARGETS + "models:\n")
        handle.write("  - gpt2\n" * (40 * 1024 * 1024 // 9))
    line = _refused(cli, deadline, path, "1 MiB limit", seconds=10)
    assert MANIFEST_MAX_BYTES == 1024 * 1024 and str(path.stat().st_size) in line


def test_a_toml_of_escaped_keys_is_parsed_in_linear_time(cli: Any, deadline: Any, tmp_path: Path) -> None:
    """367 KiB of keys written with escapes: the line index scanned the whole text once per key (> 60 s)."""
    lines = ["[[models]]", 'model = "gpt2"', "[[targets]]", 'gpu = "A100-80GB"', "[workload]"]
    i = 0
    while sum(len(line) + 1 for line in lines) < 367 * 1024:
        lines.append(f'"\\u0078{i:06d}" = 1')
        i += 1
    path = tmp_path / "escaped.toml"
    path.write_text("\n".join(lines) + "\n")
    _refused(cli, deadline, path, "line 5", "workload.x000000", "unknown field", seconds=15)


def test_a_million_pairs_are_refused_with_a_clear_message(cli: Any, deadline: Any, tmp_path: Path) -> None:
    models = "".join(f"  - m{i}\n" for i in range(1000))
    targets = "".join(f"  - t{i}\n" for i in range(1000))
    path = tmp_path / "pairs.yaml"
    path.write_text(f"models:\n{models}targets:\n{targets}")
    assert path.stat().st_size < 43 * 1024
    line = _refused(cli, deadline, path, "1,000,000 pairs", "split it into several manifests", seconds=10)
    assert f"{MAX_PAIRS:,}" in line


def test_non_finite_numbers_are_refused(cli: Any, deadline: Any, tmp_path: Path) -> None:
    path = tmp_path / "nan.toml"
    path.write_text('[[models]]\nmodel = "gpt2"\n[[targets]]\ngpu = "A100-80GB"\n[workload]\nbatch = nan\n')
    _refused(cli, deadline, path, "not a finite number")
