#!/usr/bin/env python3
"""Issues 12 and 29's acceptance: does the advisor's choice reach >= 0.97 of the best candidate measured in the
same run?

Usage: python benchmarks/measured_choice.py [--gpu h100] [--out docs/benchmarks/measured-choice.md] [--static]
For every (model, workload, dtype, run) of data/measurements/<gpu>.json, `recommend` plans for the snapshot of the
machine that measured the run, with the shipped rows (the default) and, with --static, without them
(`--no-measurements`, the static order); each choice is scored by the throughput measured in that run. Runs
measured with flash-attn-4 installed (benchmarks/attention_kernels.py) plan on the H100 snapshot with
flash-attn-4 4.0.0b36 (tests/fixtures/envs/h100_fa4_tf517.json), the others on docs/examples/h100-probe.json.
Prefill at batch 1 is compute-bound: the acceptance; batched decode (16 x 512, 32 new tokens) is launch-bound, so
its rows carry the run's spread beside the ratio. A choice the run did not time (eager, for the flash-attn-4 run:
it timed sdpa, FA4 and flex) is scored through a candidate both runs timed, (choice / sdpa in the run that timed
the choice) x (sdpa / best in this run), and marked "via sdpa of RUN"; a model whose full depth does not fit one
GPU in that dtype (the rows ran 4 layers) has no choice to score.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SNAPSHOT = ROOT / "docs" / "examples" / "h100-probe.json"
FA4_SNAPSHOT = ROOT / "tests" / "fixtures" / "envs" / "h100_fa4_tf517.json"
SHAPES = {"prefill": {"batch": 1, "seq_len": 2048}, "batch": {"batch": 16, "seq_len": 544}}  # the runs' workloads
THRESHOLD = 0.97


def _target(model: str) -> str:
    """A hub id the advisor ships, or the config of a shape no shipped model covers."""
    from attention_kernels import EXTRA as KERNEL_EXTRA
    from h100_measure import EXTRA

    extra = {**EXTRA, **KERNEL_EXTRA}
    if model not in extra:
        return model
    target = Path(tempfile.mkdtemp()) / "config.json"
    target.write_text(json.dumps(extra[model]))
    return str(target)


def _snapshot(rows: list[dict[str, Any]]) -> Path:
    with_fa4 = any("flash-attn-4=" in r["key"]["attention_kernels"]
                   and "flash-attn-4=none" not in r["key"]["attention_kernels"] for r in rows)
    return FA4_SNAPSHOT if with_fa4 else SNAPSHOT


def _anchored(label: str, run_rows: dict[str, Any], others: list[dict[str, Any]]) -> tuple[float, str] | None:
    """A choice this run did not time, scored through a candidate both runs timed (sdpa first): the choice's
    ratio to that candidate in its own run, times that candidate's ratio to this run's best."""
    best = max(r["value"] for r in run_rows.values())
    for rows in others:
        if label not in rows:
            continue
        shared = sorted(set(rows) & set(run_rows), key=lambda c: (not c.startswith("sdpa "), c))
        if shared:
            anchor = shared[0]
            ratio = rows[label]["value"] / rows[anchor]["value"] * run_rows[anchor]["value"] / best
            return ratio, f"via {anchor.split(' /')[0]} of {rows[label]['run']}"
    return None


def evaluate(gpu: str = "h100", static: bool = False, workloads: tuple[str, ...] = ("prefill", "batch"),
             data_file: Path | None = None) -> list[dict[str, Any]]:
    """One entry per (model, workload, dtype, run) with two or more candidates: best, choice and ratio."""
    from advisor.api import recommend
    from advisor.model.resolve import resolve_model

    data = json.loads((data_file or ROOT / "data" / "measurements" / f"{gpu}.json").read_text())
    runs: dict[tuple[str, str, str, str], dict[str, Any]] = defaultdict(dict)
    for row in data["rows"]:
        key = row["key"]
        if key["workload"] not in workloads:
            continue
        model = data["models"][f"{key['model_type']} {key['shape']}"]
        dtype = key["candidate"].split(" / ")[1]
        runs[(model, key["workload"], dtype, row["run"])][key["candidate"]] = row
    out = []
    for (model, workload, dtype, run), rows in sorted(runs.items()):
        if len(rows) < 2:
            continue  # one viable candidate (bloom: eager only): nothing to rank
        best = max(rows.values(), key=lambda r: r["value"])
        target = _target(model)
        shape = dict(SHAPES[workload])
        cut = data.get("prompts_cut_to_positions", {}).get(f"{model} {workload}")
        if cut:  # BERT and GPT-2 ran at their learned positions
            shape["seq_len"] = cut + (0 if workload == "prefill" else 32)
        positions = resolve_model(target).max_positions
        if positions:  # T5's and Whisper's decoder positions: the measured decoder never went past them
            shape["seq_len"] = min(shape["seq_len"], positions)
        entry: dict[str, Any] = {"model": model, "workload": workload, "dtype": dtype, "run": run,
                                 "bound": "compute" if workload == "prefill" else "launch",
                                 "best": best["key"]["candidate"],
                                 "spread": max((r["spread"] for r in rows.values() if r["spread"] is not None),
                                               default=None)}
        for used in (True, False) if static else (True,):
            plan = recommend(target, env=_snapshot(list(rows.values())), dtype=dtype, quantize="none",
                             measurements=used, **shape)
            label = plan.chosen.label if plan.chosen else None
            name = "advisor" if used else "static"
            entry[name] = label
            entry[f"{name}_ratio"] = rows[label]["value"] / best["value"] if label in rows else None
            entry[f"{name}_basis"] = "same run" if label in rows else "not timed"
            others = [r for (m, wl, dt, other), r in runs.items() if (m, wl, dt) == (model, workload, dtype)
                      and other != run]
            scored = _anchored(label, rows, others) if label is not None and label not in rows else None
            if scored is not None:
                entry[f"{name}_ratio"], entry[f"{name}_basis"] = scored
        out.append(entry)
    return out


def _cell(label: str | None, ratio: float | None, basis: str = "same run") -> str:
    attn = (label or "no plan fits").split(" /")[0]
    if ratio is None:
        return f"{attn} | {'not timed' if label else '-'}"
    return f"{attn} | {ratio:.2f}" + ("" if basis == "same run" else f" ({basis})")


def _spread(spread: float | None) -> str:
    return "not recorded" if spread is None else f"{100 * spread:.0f}%"  # attention_kernels.py keeps the median only


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", default="h100", help="data/measurements/<gpu>.json")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--static", action="store_true", help="also score the static order (--no-measurements)")
    parser.add_argument("--data", type=Path, help="another shipped file (default data/measurements/<gpu>.json)")
    args = parser.parse_args()
    entries = evaluate(args.gpu, static=args.static, data_file=args.data)
    head = "| model | workload | dtype | run | bound | best measured | advisor choice | ratio |"
    rule = "|---|---|---|---|---|---|---|---|"
    if args.static:
        head, rule = head + " static choice | ratio |", rule + "---|---|"
    lines = [head + " spread |", rule + "---|"]
    for e in entries:
        static = f" {_cell(e['static'], e['static_ratio'], e['static_basis'])} |" if args.static else ""
        lines.append(f"| {e['model']} | {e['workload']} | {e['dtype']} | {e['run']} | {e['bound']} | "
                     f"{e['best'].split(' /')[0]} | {_cell(e['advisor'], e['advisor_ratio'], e['advisor_basis'])} |{static} "
                     f"{_spread(e['spread'])} |")
    summary = []
    for workload, bound in (("prefill", "compute-bound"), ("batch", "launch-bound")):
        scored = [e["advisor_ratio"] for e in entries if e["workload"] == workload and e["advisor_ratio"] is not None]
        unscored = [e for e in entries if e["workload"] == workload and e["advisor_ratio"] is None]
        worst = f"{min(scored):.2f}" if scored else "-"
        anchored = sum(1 for e in entries if e["workload"] == workload and e["advisor_basis"].startswith("via"))
        summary.append(f"{workload} ({bound}): worst advisor/best {worst} over {len(scored)} run rows"
                       + (f" ({anchored} through a candidate of another run)" if anchored else "")
                       + (f"; {len(unscored)} not scored (no plan fits, or the choice timed in no run that shares a "
                          "candidate)" if unscored else ""))
        if args.static:
            static = [e["static_ratio"] for e in entries if e["workload"] == workload and e["static_ratio"] is not None]
            summary[-1] += f"; static order alone: worst {min(static):.2f}" if static else ""
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary) + f"\n(threshold {THRESHOLD})\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
