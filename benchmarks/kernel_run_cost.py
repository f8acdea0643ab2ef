"""Where a fresh `advisor doctor` spends its time on a GPU machine (issue 14): each kernel the probe runs, timed
alone in its own child (torch import and CUDA context included), then all of them in one child as the probe does.

Usage (GPU machine, repository root): python benchmarks/kernel_run_cost.py OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.probe.kernels import kernel_specs, run_batch
from advisor.probe.packages import probe_libraries


def main() -> None:
    specs = kernel_specs(probe_libraries(import_checks=False))
    dtypes = ["float32", "float16", "bfloat16"]
    out: dict[str, float] = {}
    for spec in specs:
        start = time.perf_counter()
        run_batch([spec], device="cuda:0", dtypes=dtypes)
        out[spec.kind] = round(time.perf_counter() - start, 2)
        print(spec.kind, out[spec.kind], flush=True)
    start = time.perf_counter()
    run_batch(specs, device="cuda:0", dtypes=dtypes)
    out["all in one child"] = round(time.perf_counter() - start, 2)
    print("all", out["all in one child"], flush=True)
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
