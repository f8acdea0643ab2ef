#!/usr/bin/env bash
# Issue 5 on the device machine: the advisor's cost against collect_env, then regret and memory prediction.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
python3 benchmarks/advisor_cost.py --repeats 3 --json $OUT/advisor-cost-h100.json
mkdir -p $OUT/bench
timeout 460 python3 benchmarks/regret_memory.py $OUT/bench --repeats 2 --timeout 90
