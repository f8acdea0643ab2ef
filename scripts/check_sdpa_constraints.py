"""Check data/sdpa_backends.json against torch's own release wheels (CUDA builds from PyPI).

Usage: python scripts/check_sdpa_constraints.py [--cache DIR] [--write] 2.5.0 2.6.0 ... 2.13.0

The SDPA backend limits live in aten/src/ATen/native/transformers/cuda/sdp_utils.cpp, which is compiled into
torch/lib/libtorch_cuda.so; the shared checks are inline in torch/include/ATen/native/transformers/sdp_utils_cpp.h,
which every wheel ships. For each release this script downloads the Linux x86_64 wheel once
(`pip download --no-deps torch==X`, about 0.5-0.9 GB, kept in --cache), reads those two files straight from the
zip, and checks each row's `evidence`: a `string` must occur in libtorch_cuda.so's read-only data (the TORCH_WARN
text the check prints, e.g. "Flash attention only supports gpu architectures in the range [sm80, sm121]"), a
`header` pattern must occur in sdp_utils_cpp.h (its 1-based line is reported), an `extract` pattern's groups
become the release's `value`, and a `present` string's presence (1) or absence (0) does. With --write the per-release
results replace each row's `checked` list. Nothing is installed or imported.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "data" / "sdpa_backends.json"
HEADER = "torch/include/ATen/native/transformers/sdp_utils_cpp.h"
LIBRARY = "torch/lib/libtorch_cuda.so"


def wheel(version: str, cache: Path) -> Path:
    """The manylinux x86_64 CPython 3.11 wheel of torch `version` (CUDA build), downloaded once into `cache`."""
    found = _cached(version, cache)
    if found is not None:
        return found
    # --isolated: a configured local index or find-links may offer the +cpu build under the same version
    subprocess.run([sys.executable, "-m", "pip", "--isolated", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "--index-url", "https://pypi.org/simple", "--cert", "/etc/ssl/certs/ca-certificates.crt",
                    f"torch=={version}", "-d", str(cache)], check=True, capture_output=True)
    found = _cached(version, cache)
    if found is None:
        sys.exit(f"no CUDA wheel of torch {version} in {cache}")
    return found


def _cached(version: str, cache: Path) -> Path | None:
    """torch-2.10.0-3-cp311-...whl (a build tag) counts; a +cpu build has no libtorch_cuda.so and does not."""
    found = sorted(p for p in cache.glob(f"torch-{version}-*x86_64.whl") if "cp311" in p.name)
    return found[0] if found else None


def read_release(path: Path) -> tuple[str, bytes, list[str]]:
    """(git commit of the build, libtorch_cuda.so bytes, sdp_utils_cpp.h lines) from the wheel zip."""
    with zipfile.ZipFile(path) as z:
        version_py = z.read("torch/version.py").decode()
        commit = re.search(r"git_version = '([0-9a-f]{40})'", version_py)
        header = z.read(HEADER).decode(errors="replace").splitlines() if HEADER in z.namelist() else []
        return commit.group(1) if commit else "", z.read(LIBRARY), header


def check(row: dict[str, object], release: str, commit: str, library: bytes, header: list[str]) -> dict[str, object]:
    """One release's result for one row: every evidence item found (with header lines), or what is missing."""
    found: list[str] = []
    missing: list[str] = []
    value: list[int] | None = None
    for item in row["evidence"]:  # type: ignore[attr-defined]
        if "extract" in item:
            match = re.search(item["extract"].encode(), library)
            if match:
                value = [int(g) for g in match.groups()]
                found.append(f"{LIBRARY}: {match.group(0).decode()!r}")
            else:
                missing.append(f"{LIBRARY}: /{item['extract']}/")
        elif "present" in item:  # a switch some releases have: the value says whether this one does
            value = [int(item["present"].encode() in library)]
            found.append(f"{LIBRARY}: {item['present']!r} {'present' if value[0] else 'absent'}")
        elif "string" in item:
            (found if item["string"].encode() in library else missing).append(f"{LIBRARY}: {item['string']!r}")
        else:
            lines = [n for n, text in enumerate(header, 1) if re.search(item["header"], text)]
            if lines:
                found.append(f"{HEADER}:{lines[0]}")
            else:
                missing.append(f"{HEADER}: /{item['header']}/")
    return {"torch": release, "commit": commit, "holds": not missing, "value": value, "found": found,
            "missing": missing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("releases", nargs="+")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "advisor" / "torch-wheels")
    parser.add_argument("--write", action="store_true", help="store the results in each row's `checked`")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    results: dict[int, list[dict[str, object]]] = {i: [] for i in range(len(table["rows"]))}
    for release in args.releases:
        commit, library, header = read_release(wheel(release, args.cache))
        for i, row in enumerate(table["rows"]):
            result = check(row, release, commit, library, header)
            results[i].append(result)
            state = "holds" if result["holds"] else f"MISSING {result['missing']}"
            print(f"torch {release} {row['backend']}.{row['constraint']}: {state} {result['value'] or ''}")
    if args.write:
        for i, row in enumerate(table["rows"]):
            row["checked"] = [{k: r[k] for k in ("torch", "commit", "holds", "value", "found") if r[k] is not None}
                              for r in results[i]]
        TABLE.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
