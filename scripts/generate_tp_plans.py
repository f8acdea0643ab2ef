#!/usr/bin/env python
"""Build `data/tp_plans.json`: each model type's tensor-parallel plan, release by release (issue 30).

Why: tensor parallelism is a candidate only where the target's release gives the model type a plan
(`base_model_tp_plan` in its configuration class: module pattern -> style), and the plan says which sizes
divide (colwise shards heads and the intermediate size) and which modules every rank keeps whole (those it does
not name: embeddings and norms; `lm_head` unless the model class's `_tp_plan` names it). The planner must answer
this for a target release that is not installed, without importing transformers.

How: for every stored release whose from_pretrained reads `tp_plan` (data/release_constraints.json
`tp_plan_kwarg`, 4.47 onwards), read `models/*/configuration_*.py` and `models/*/modeling_*.py` straight from
the wheel (`~/.cache/advisor/transformers-wheels`, as scripts/generate_release_constraints.py fetches them) as
AST: the configuration class that sets `model_type` and `base_model_tp_plan` (a dict literal), and the
`_tp_plan` literal of the model file's head classes. Nothing is installed or imported. A configuration class
that inherits its plan from a class in another file is recorded as having none (the reader is conservative).

    python scripts/generate_tp_plans.py
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advisor.knowledge.release_reader import Release, runs  # noqa: E402

OUTPUT = REPO / "data" / "tp_plans.json"
CONSTRAINTS = REPO / "data" / "release_constraints.json"
WHEELS = Path.home() / ".cache" / "advisor" / "transformers-wheels"
_CONFIG = re.compile(r"^transformers/models/([^/]+)/configuration_[^/]+\.py$")


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _class_assigns(cls: ast.ClassDef) -> dict[str, tuple[ast.expr, int]]:
    found: dict[str, tuple[ast.expr, int]] = {}
    for node in cls.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) and node.value is not None else []
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:  # type: ignore[union-attr]
                found[target.id] = (node.value, node.lineno)  # type: ignore[union-attr]
    return found


def _head_plan(release: Release, folder: str) -> dict[str, str]:
    """The `_tp_plan` entries of the model file's classes (lm_head and other head modules), merged."""
    merged: dict[str, str] = {}
    for path in (f"transformers/models/{folder}/modeling_{folder}.py",):
        tree = release.tree(path)
        for cls in (n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)):
            value = _class_assigns(cls).get("_tp_plan")
            plan = _literal(value[0]) if value else None
            if isinstance(plan, dict):
                merged.update({str(k): str(v) for k, v in plan.items()})
    return merged


def read_release(release: Release, names: list[str]) -> dict[str, dict[str, Any]]:
    """model_type -> {"value": {"plan", "head"} or None, "file", "line"} for one release."""
    out: dict[str, dict[str, Any]] = {}
    for path in names:
        match = _CONFIG.match(path)
        tree = release.tree(path) if match else None
        if tree is None:
            continue
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        for cls in classes.values():
            assigns = _class_assigns(cls)
            model_type = _literal(assigns["model_type"][0]) if "model_type" in assigns else None
            if not isinstance(model_type, str) or not model_type:
                continue
            owner, plan_node = cls, assigns.get("base_model_tp_plan")
            while plan_node is None and owner.bases:  # inherited from a class of the same file
                base = owner.bases[0]
                owner = classes.get(base.id) if isinstance(base, ast.Name) else None  # type: ignore[assignment]
                if owner is None:
                    break
                plan_node = _class_assigns(owner).get("base_model_tp_plan")
            plan = _literal(plan_node[0]) if plan_node else None
            file = path.removeprefix("transformers/")
            if isinstance(plan, dict) and plan:
                value = {"plan": {str(k): str(v) for k, v in plan.items()}, "head": _head_plan(release, match.group(1))}  # type: ignore[union-attr]
                out[model_type] = {"value": value, "file": file, "line": plan_node[1]}  # type: ignore[index]
            elif model_type not in out:
                out[model_type] = {"value": None, "file": file, "line": None}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=WHEELS)
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    constraints = json.loads(CONSTRAINTS.read_text(encoding="utf-8"))
    releases = [v for v in constraints["releases"]
                if any(r["value"] for r in constraints["facts"]["tp_plan_kwarg"]
                       if _index(constraints, r["from"]) <= _index(constraints, v) <= _index(constraints, r["to"]))]
    table: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for version in releases:
        wheel = args.cache / f"transformers-{version}-py3-none-any.whl"
        if not wheel.exists():
            raise SystemExit(f"{wheel} is missing: run scripts/generate_release_constraints.py first (it fetches it)")
        release = Release(version, wheel)
        assert release._zip is not None
        per_type = read_release(release, release._zip.namelist())
        for model_type in sorted(set(table) | set(per_type)):
            table.setdefault(model_type, []).append(
                (version, per_type.get(model_type, {"value": None, "file": "", "line": None})))
        print(f"read transformers {version}: {sum(1 for v in per_type.values() if v['value'])} plans", file=sys.stderr)
    data = {
        "schema_version": 1,
        "description": ("Each model type's tensor-parallel plan per stored release: `plan` is the configuration "
                        "class's base_model_tp_plan (module pattern -> style), `head` the model file's _tp_plan "
                        "entries (lm_head ...); value null: no plan in that release (or no such model type); a model "
                        "type absent from the table has no plan in any of these releases."),
        "generated_by": "python scripts/generate_tp_plans.py",
        "source": "transformers wheels from PyPI, read as AST without installing",
        "releases": releases,
        # a model type that never had a plan is left out: absent means no plan in any stored release
        "model_types": {name: runs(values) for name, values in sorted(table.items())
                        if any(item["value"] for _, item in values)},
    }
    args.output.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(releases)} releases, {len(table)} model types)", file=sys.stderr)
    return 0


def _index(constraints: dict[str, Any], version: str) -> int:
    return constraints["releases"].index(version)


if __name__ == "__main__":
    raise SystemExit(main())
