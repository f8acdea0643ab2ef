#!/usr/bin/env python
"""The agreement of the advisor's attention matrix with each stored release's executed acceptance.

Reads `data/acceptance/transformers-<release>.json` (made by `scripts/generate_acceptance.py`) and compares, per
release, three views of the matrix with it:

- `matrix`: what `advisor matrix --transformers <release> --format json` prints (FA4 included);
- `full`: the `declared` flags of `advisor matrix --full --transformers <release>` (FA4 where it has a column);
- `history`: the flag strings of `data/attention_history.json` as stored (FA4 where stored).

A cell is one model type x one implementation whose name the release accepts (eager excluded: accepted wherever
the model builds). It is decided where the executed acceptance says True or False; agreed where the view says the
same. A model type the view lacks counts as a disagreement. Undecided cells are listed with their reasons.

    python scripts/acceptance_report.py                    # docs/acceptance/agreement.md and .json
    python scripts/acceptance_report.py --baseline docs/acceptance/agreement-before.json   # with a before column
    python scripts/acceptance_report.py --json-only --output-json /tmp/before.json        # numbers only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # PYTHONPATH first: the "before" numbers run against another checkout

ACCEPTANCE = REPO / "data" / "acceptance"
OUT_MD = REPO / "docs" / "acceptance" / "agreement.md"
OUT_JSON = REPO / "docs" / "acceptance" / "agreement.json"
TARGET = 99.5
AUDIT = {"4.46.3": 99.5, "4.57.6": 97.4, "5.4.0": 88.7}


def load_acceptance(release: str, folder: Path = ACCEPTANCE) -> dict[str, Any] | None:
    path = folder / f"transformers-{release}.json"
    return json.loads(path.read_text()) if path.exists() else None


def executed_cells(data: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(model_type, impl) -> (char, note) for every implementation the release accepts by name."""
    cells = {}
    for model_type, (_, flags, notes) in data["types"].items():
        for impl, char in zip(data["impls"], flags):
            if char != "-":
                cells[(model_type, impl)] = (char, notes.get(impl, ""))
    return cells


def _cli_json(argv: list[str]) -> dict[str, Any]:
    from advisor.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"advisor {' '.join(argv)} exited {code}")
    return dict(json.loads(out.getvalue()))


def view_matrix(release: str) -> dict[str, dict[str, bool]]:
    table = _cli_json(["matrix", "--transformers", release, "--format", "json"])
    return {row["model_type"]: {k: v for k, v in row.items() if isinstance(v, bool)} for row in table["architectures"]}


def view_full(release: str) -> dict[str, dict[str, bool]]:
    table = _cli_json(["matrix", "--full", "--transformers", release, "--format", "json"])
    return {row["model_type"]: dict(row["declared"]) for row in table["architectures"]}


def view_history(release: str) -> dict[str, dict[str, bool]]:
    from advisor.knowledge.history import load_history

    history = load_history()
    if release not in history.releases:
        return {}
    index = history.releases.index(release)
    rows: dict[str, dict[str, bool]] = {}
    for model_type, row in history.architectures.items():
        if row.presence()[index] in "-?":
            continue
        rows[model_type] = {
            impl: getattr(row, impl)[index] == "1"
            for impl in ("sdpa", "flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")
            if isinstance(getattr(row, impl, None), str)
        }
    return rows


def compare(cells: dict[tuple[str, str], tuple[str, str]], view: dict[str, dict[str, bool]]) -> dict[str, Any]:
    decided = agreed = 0
    disagreements, not_shown = [], []
    for (model_type, impl), (char, note) in sorted(cells.items()):
        if char == "?":
            continue
        if model_type in view and impl not in view[model_type]:
            not_shown.append(f"{model_type}/{impl}")
            continue  # the view has no column for it (counted apart)
        decided += 1
        said = view.get(model_type, {}).get(impl)
        if said is None:
            disagreements.append({"cell": f"{model_type}/{impl}", "matrix": None, "executed": char == "1",
                                  "why": "model type missing from the matrix"})
        elif said == (char == "1"):
            agreed += 1
        else:
            disagreements.append({"cell": f"{model_type}/{impl}", "matrix": said, "executed": char == "1",
                                  "why": note})
    return {
        "decided": decided,
        "agreed": agreed,
        "percent": round(100.0 * agreed / decided, 2) if decided else None,
        "disagreements": disagreements,
        "no_column": len(not_shown),
    }


def report(releases: list[str], folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"releases": {}, "missing": []}
    for release in releases:
        data = load_acceptance(release, folder)
        if data is None:
            out["missing"].append(release)
            continue
        cells = executed_cells(data)
        undecided: dict[str, list[str]] = {}  # reason -> cells (one reason often covers every cell of a type)
        for (mt, impl), (c, note) in sorted(cells.items()):
            if c == "?":
                undecided.setdefault(note, []).append(f"{mt}/{impl}")
        entry = {
            "cells": len(cells),
            "undecided_count": sum(len(v) for v in undecided.values()),
            "undecided": dict(sorted(undecided.items())),
            "impls": [i for i in data["impls"] if i not in data["not_accepted"]],
            "wheel": data.get("wheel", {}),
            "api": data.get("api"),
            "extras": data["environment"].get("extras", {}),
            "config_fields": data.get("config_fields", {}),
        }
        for name, view in (("matrix", view_matrix), ("full", view_full), ("history", view_history)):
            try:
                entry[name] = compare(cells, view(release))
            except Exception as exc:  # a view that cannot answer for this release says so
                entry[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out["releases"][release] = entry
    return out


def dumps(value: Any, indent: str = "") -> str:
    """JSON with objects one key a line and every list on one line (the report stays small and diffable)."""
    if isinstance(value, dict) and value:
        inner = indent + " "
        body = ",\n".join(f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items())
        return "{\n" + body + "\n" + indent + "}"
    return json.dumps(value, separators=(", ", ": "))


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}%"


def markdown(result: dict[str, Any], baseline: dict[str, Any] | None, command: str, seconds: float) -> str:
    releases = sorted(result["releases"], key=Version)
    lines = [
        "# Attention matrix against each release's executed acceptance",
        "",
        f"Generated by `{command}` ({seconds:.0f} s) from `data/acceptance/transformers-<release>.json`, which "
        "`python scripts/generate_acceptance.py` makes by running each release's own load path "
        "(`advisor/knowledge/acceptance.py`; the method is in docs/knowledge.md).",
        "",
        "A cell is one model type x one implementation whose name the release accepts (sdpa, flash_attention_2/3/4, "
        "flex_attention; eager is accepted wherever the model builds and is not counted). Decided: the executed "
        "verdict is accepted or refused. Agreed: `advisor matrix --transformers <release> --format json` says the "
        "same. `full` is `advisor matrix --full`'s declared flags, `history` the stored flag strings of "
        "`data/attention_history.json`. A model type missing from a view counts as a disagreement.",
        "",
    ]
    head = "| release | API | cells | undecided | matrix agreed/decided | matrix | full | history |"
    sep = "|---|---|---|---|---|---|---|---|"
    if baseline:
        head += " before (matrix) | audit |"
        sep += "---|---|"
    lines += [head, sep]
    for release in releases:
        entry = result["releases"][release]
        m = entry["matrix"]
        row = (f"| {release} | {entry['api']} | {entry['cells']} | {entry['undecided_count']} | "
               f"{m.get('agreed', '-')}/{m.get('decided', '-')} | {_pct(m.get('percent'))} | "
               f"{_pct(entry['full'].get('percent'))} | {_pct(entry['history'].get('percent'))} |")
        if baseline:
            before = baseline.get("releases", {}).get(release, {}).get("matrix", {}).get("percent")
            row += f" {_pct(before)} | {_pct(AUDIT.get(release))} |"
        lines.append(row)
    if result["missing"]:
        lines += ["", f"Not yet executed: {', '.join(sorted(result['missing'], key=Version))}."]
    lines += ["", "## Disagreements (matrix)", ""]
    any_dis = False
    for release in releases:
        dis = result["releases"][release]["matrix"].get("disagreements", [])
        if dis:
            any_dis = True
            lines.append(f"- {release}: " + "; ".join(
                f"`{d['cell']}` matrix {d['matrix']}, executed {d['executed']}" + (f" ({d['why']})" if d["why"] else "")
                for d in dis[:40]) + (f"; and {len(dis) - 40} more" if len(dis) > 40 else ""))
    if not any_dis:
        lines.append("None.")
    built: dict[str, tuple[Any, list[str]]] = {}
    for release in releases:
        for model_type, fields in result["releases"][release].get("config_fields", {}).items():
            built.setdefault(json.dumps({model_type: fields}), (fields, []))[1].append(release)
    if built:
        lines += ["", "## Built with config fields", "",
                  "Types whose default config does not build, built with the fields that make it valid (the table "
                  "`CONFIG_FIELDS` of `scripts/generate_acceptance.py` says why each); the default is always tried "
                  "first. Releases executed with the extras: "
                  + (", ".join(r for r in releases if result["releases"][r].get("extras")) or "none") + ".", ""]
        for key, (fields, where) in sorted(built.items()):
            model_type = next(iter(json.loads(key)))
            lines.append(f"- `{model_type}` with `{json.dumps(fields)}`: {', '.join(where)}")
    lines += ["", "## Undecided cells, with reasons", ""]
    for release in releases:
        entry = result["releases"][release]
        if entry["undecided"]:
            lines.append(f"- {release} ({entry['undecided_count']}): " + "; ".join(
                f"{', '.join(f'`{c}`' for c in cells)}: {reason}" for reason, cells in entry["undecided"].items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", help="default: every release of data/attention_history.json")
    parser.add_argument("--acceptance", type=Path, default=ACCEPTANCE)
    parser.add_argument("--output-md", type=Path, default=OUT_MD)
    parser.add_argument("--output-json", type=Path, default=OUT_JSON)
    parser.add_argument("--baseline", type=Path, help="an earlier JSON of this script: its matrix % as 'before'")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.releases:
        releases = args.releases
    else:
        from advisor.knowledge.history import load_history

        releases = list(load_history().releases)
    result = report(releases, args.acceptance)
    seconds = time.monotonic() - started
    result["generated_by"] = "python scripts/acceptance_report.py" + (
        f" --baseline {args.baseline.relative_to(REPO) if args.baseline.is_absolute() and args.baseline.is_relative_to(REPO) else args.baseline}"
        if args.baseline else "")
    args.output_json.parent.mkdir(parents=True, exist_ok=True)
    args.output_json.write_text(dumps(result) + "\n")
    if not args.json_only:
        baseline = json.loads(args.baseline.read_text()) if args.baseline else None
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text(markdown(result, baseline, result["generated_by"], seconds))
    for release in sorted(result["releases"], key=Version):
        entry = result["releases"][release]
        print(f"{release}: matrix {_pct(entry['matrix'].get('percent'))} "
              f"({entry['matrix'].get('agreed')}/{entry['matrix'].get('decided')}), full "
              f"{_pct(entry['full'].get('percent'))}, history {_pct(entry['history'].get('percent'))}, "
              f"undecided {entry['undecided_count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
