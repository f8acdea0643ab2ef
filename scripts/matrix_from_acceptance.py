#!/usr/bin/env python
"""Make the matrix data equal each release's executed acceptance (`data/acceptance/transformers-<release>.json`).

Rewrites, for every release that has an acceptance file:

- `data/attention_history.json`: per model type the characters of sdpa, flash_attention_2, flash_attention_3,
  flex_attention and (new column) flash_attention_4 at that release: '1' accepted, '0' refused or a name the
  release does not accept at all. A cell the execution left undecided keeps the class-flag reading
  (`generate_attention_history.py`) and is listed in docs/acceptance/agreement.md. A model type the execution
  saw that the history lacks is added with '-' elsewhere. Releases without an acceptance file keep their flags, and
  their flash_attention_4 is FA2's flag from the first release accepting the name (5.4), '0' before.
- `data/attention/transformers-<release>.json` (the shipped per-release tables `advisor matrix` reads first): the
  same cells, with a `flash_attention_4` field.

    python scripts/generate_attention_history.py      # the class-flag reading (classes, renames, optimum)
    python scripts/generate_acceptance.py             # the executed acceptance
    python scripts/matrix_from_acceptance.py          # this: the matrix equals the acceptance
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import generate_attention_history as gah  # noqa: E402

HISTORY = REPO / "data" / "attention_history.json"
TABLES = REPO / "data" / "attention"
ACCEPTANCE = REPO / "data" / "acceptance"
COLUMNS = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention", "flash_attention_4")
FA4_FROM = Version("5.4")


def load(folder: Path, release: str) -> dict[str, Any] | None:
    path = folder / f"transformers-{release}.json"
    return json.loads(path.read_text()) if path.exists() else None


def cell(data: dict[str, Any], model_type: str, impl: str) -> str | None:
    """'1' / '0' as executed, None where undecided or the type was not run."""
    row = data["types"].get(model_type)
    if row is None:
        return None
    if impl in data.get("not_accepted", []):
        return "0"
    char = row[1][data["impls"].index(impl)]
    return char if char in "01" else None


def update_history(history: dict[str, Any], folder: Path) -> dict[str, Any]:
    releases = history["releases"]
    n = len(releases)
    accepted = {r: load(folder, r) for r in releases}
    architectures: dict[str, dict[str, Any]] = history["architectures"]
    for release, data in accepted.items():
        if data is None:
            continue
        for model_type, (class_name, _, _) in data["types"].items():
            if model_type not in architectures:
                architectures[model_type] = {"class": class_name, **{impl: "-" * n for impl in COLUMNS}}
    for model_type, row in architectures.items():
        if "flash_attention_4" not in row:  # derived as before issue 28 where nothing was executed
            row["flash_attention_4"] = "".join(
                ch if ch in "-?" or Version(r) >= FA4_FROM else "0"
                for r, ch in zip(releases, row["flash_attention_2"]))
        for impl in COLUMNS:
            chars = list(row[impl])
            for index, release in enumerate(releases):
                data = accepted[release]
                if data is None or model_type not in data["types"]:
                    continue
                executed = cell(data, model_type, impl)
                if executed is not None:
                    chars[index] = executed
                elif chars[index] == "-":
                    chars[index] = "?"  # present there, undecided, and no class-flag reading to keep
            row[impl] = "".join(chars)
        ordered = {k: row[k] for k in ("class", "class_history") if k in row}
        ordered.update({impl: row[impl] for impl in ("sdpa", "flash_attention_2", "flash_attention_3",
                                                     "flex_attention", "flash_attention_4")})
        architectures[model_type] = ordered
    history["architectures"] = dict(sorted(architectures.items()))
    covered = [r for r in releases if accepted[r] is not None]
    history["description"] = (
        "Attention implementations each architecture accepts, per transformers release. Each string has one "
        "character per entry of `releases`, in order: '1' accepted, '0' refused, '-' model type absent from that "
        "release's auto mappings, '?' present but undecided (class not importable, or not executable here). Where "
        "a release has data/acceptance/transformers-<release>.json (its executed acceptance: sub-models, "
        "model-local attention tables, FA3 dropout, FA4), the characters are the executed verdicts; an undecided "
        "cell keeps the class's declared flag. flash_attention_4 (issue 28): executed where covered, else FA2's "
        "flag from 5.4 on. 'eager' is always supported and not stored. `class`: the class built (its base model, "
        "else its first head class), see `class_history`.")
    history["generated_by"] = ("python scripts/generate_attention_history.py && "
                               "python scripts/matrix_from_acceptance.py")
    history["acceptance"] = {
        "source": "data/acceptance/transformers-<release>.json (python scripts/generate_acceptance.py)",
        "releases": covered,
    }
    return history


def update_table(release: str, data: dict[str, Any]) -> bool:
    path = TABLES / f"transformers-{release}.json"
    if not path.exists():
        return False
    table = json.loads(path.read_text())
    for row in table["architectures"]:
        for impl in COLUMNS:
            executed = cell(data, row["model_type"], impl)
            if executed is not None:
                row[impl] = executed == "1"
            elif impl == "flash_attention_4":
                row[impl] = bool(row["flash_attention_2"]) and Version(release) >= FA4_FROM
        ordered = {k: row[k] for k in ("model_type", "class", "eager", "sdpa", "flash_attention_2",
                                        "flash_attention_3", "flash_attention_4", "flex_attention")}
        row.clear()
        row.update(ordered)
    table["description"] = ("Attention implementations each model type accepts in this release: executed "
                            "(data/acceptance/transformers-" + release + ".json) where decided, else the class "
                            "flags read by advisor.knowledge.introspect.")
    table["generated_by"] = "python scripts/refresh_attention_table.py && python scripts/matrix_from_acceptance.py"
    path.write_text(json.dumps(table, indent=1) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acceptance", type=Path, default=ACCEPTANCE)
    parser.add_argument("--history", type=Path, default=HISTORY)
    args = parser.parse_args(argv)
    history = update_history(json.loads(args.history.read_text()), args.acceptance)
    args.history.write_text(gah.dump(history))
    tables = [r for r in history["acceptance"]["releases"] if update_table(r, load(args.acceptance, r) or {})]
    print(f"wrote {args.history.relative_to(REPO)} ({len(history['acceptance']['releases'])} releases executed) "
          f"and {', '.join(f'data/attention/transformers-{r}.json' for r in tables) or 'no per-release table'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
