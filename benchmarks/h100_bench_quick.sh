#!/usr/bin/env bash
# The reduced regret / memory run that fitted the remaining device time (see docs/benchmarks/README.md).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p $OUT/bench
timeout 400 python3 benchmarks/regret_memory.py $OUT/bench --repeats 2 --timeout 90 --models llama-3.2-1b --quick
