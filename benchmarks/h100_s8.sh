#!/usr/bin/env bash
# Issue 27, stop 39, on the device machine in one call, from the repository root, with the wheels of
# docs/gpu/README.md's "Issue 24" list carried in .whl/ (transformers 5.25.0 first on the path):
#   1. benchmarks/h100_memory.py --set issue27-s8: a third out-of-sample set (then, on any machine with
#      transformers 5.25, benchmarks/memory_table.py);
#   2. benchmarks/kernel_timeline.py: where a first doctor's kernel child spends its time (one batch or two);
#   3. one traced doctor on an empty cache (benchmarks/trace_doctor.py); with COST=1, benchmarks/advisor_cost.py.
. benchmarks/device_setup.sh  # the carried wheels on PYTHONPATH, $OUT, the GPU recorded
if [ "${MEMORY:-1}" = 1 ]; then
  timeout 300 python3 benchmarks/h100_memory.py "$OUT" --set issue27-s8 --name h100-memory-issue27-s8.json 2>&1 | tail -40
fi
timeout 120 python3 benchmarks/kernel_timeline.py "$OUT/kernel-timeline.json" 2>&1 | tail -3
ADVISOR_CACHE_DIR=$(mktemp -d) python3 benchmarks/trace_doctor.py > "$OUT/trace-doctor.json"
if [ "${COST:-0}" = 1 ]; then
  timeout "${COST_LIMIT:-300}" python3 benchmarks/advisor_cost.py --repeats "${REPEATS:-3}" \
    --json "$OUT/advisor-cost-h100.json" 2>&1 | tail -14
fi
ls -la "$OUT"
