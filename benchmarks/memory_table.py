"""Predicted against measured peak memory, from committed benchmark JSON and the current estimator.

Usage: python benchmarks/memory_table.py docs/benchmarks/*-*.json
The measured peaks are torch.cuda.max_memory_allocated() from the H100 runs; the predictions are recomputed with
advisor.memory as it is now, so a change to the estimator shows up here without another GPU run. Each file's
model is the shipped config named by its file-name prefix (see MODELS in regret_memory.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from regret_memory import MODELS, slug_of  # noqa: E402

from advisor.bench import BenchReport, repredict  # noqa: E402
from advisor.model import resolve_model  # noqa: E402
from advisor.targets import load_environment  # noqa: E402

GPU = load_environment(ROOT / "docs" / "examples" / "h100-probe.json").gpu_list


def main(paths: list[str]) -> None:
    print("| model | workload | configuration | measured GiB | predicted GiB | error |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    lines: list[tuple[int, str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()  # the advisor's choice is measured in several files: list it once
    for path in paths:
        slug = slug_of(Path(path))
        report = BenchReport.model_validate_json(Path(path).read_text())
        for row, predicted in repredict(report, resolve_model(MODELS[slug]), GPU[:1]):
            if (slug, report.workload.name, row.label) in seen:
                continue
            seen.add((slug, report.workload.name, row.label))
            measured = row.peak_memory_bytes or 1
            error = (predicted - measured) / measured
            worst = max(worst, abs(error))
            lines.append((list(MODELS).index(slug), report.workload.name, row.label,
                          f"| {slug} | {report.workload.name} | {row.label} | {measured / 2**30:.2f} "
                          f"| {predicted / 2**30:.2f} | {100 * error:+.1f}% |"))
    print("\n".join(line[-1] for line in sorted(lines)))
    print(f"\n{len(lines)} configurations; largest absolute error: {100 * worst:.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
