"""A library's requirement on another, as its wheels declare it to pip (issue 28: a constraint pip metadata answers
is read from the wheel's `Requires-Dist`, which pip's resolver enforces, not from docs).

Usage: python scripts/check_requires_dist.py OUT.json PACKAGE DEPENDENCY VERSION [VERSION ...]
  e.g. python scripts/check_requires_dist.py docs/knowledge/optimum-onnx-requires.json optimum-onnx transformers \
       0.0.1 0.0.2 0.0.3 0.1.0

Each release's wheel is fetched into the wheelhouse `.dev/attention_history/wheels` without its dependencies
(`scripts/generate_attention_history.py`'s fetcher) and its `*.dist-info/METADATA` read: every `Requires-Dist`
line naming DEPENDENCY, with the line number. data/libraries.json's pin rows cite the file this writes.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_attention_history import DEFAULT_CACHE, _ensure_wheels  # noqa: E402  (one wheelhouse, one fetcher)


def _wheel(wheels: Path, package: str, version: str) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", package).lower()
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")]
    return found[0] if found else None


def requires(wheels: Path, package: str, dependency: str, version: str) -> dict[str, object]:
    wheel = _wheel(wheels, package, version)
    if wheel is None:
        error = _ensure_wheels(sys.executable, wheels, f"{package}=={version}", no_deps=True)
        wheel = _wheel(wheels, package, version)
        if wheel is None:
            return {"version": version, "error": error or "no wheel"}
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode("utf-8").splitlines()
    pattern = re.compile(rf"^Requires-Dist:\s*{re.escape(dependency)}\b", re.IGNORECASE)
    return {"version": version, "wheel": wheel.name,
            "requires": [{"line": i, "text": line} for i, line in enumerate(lines, 1) if pattern.match(line)]}


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__.splitlines()[3], file=sys.stderr)
        return 2
    out, package, dependency, versions = Path(argv[0]), argv[1], argv[2], argv[3:]
    wheels = DEFAULT_CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    results = [requires(wheels, package, dependency, v) for v in versions]
    for result in results:
        print(json.dumps(result))
    out.write_text(json.dumps({"generated_by": "python scripts/check_requires_dist.py " + " ".join(argv),
                               "package": package, "dependency": dependency, "results": results}, indent=1) + "\n",
                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
