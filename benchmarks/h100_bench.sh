#!/usr/bin/env bash
# Issue 5 on the device machine, one model per call (a call may run 10 minutes):
#   [ROUNDS=N] [REPEATS=N] [PART=quantized [QUANT=8bit|4bit]] [TIMEOUT=S] [LIMIT=S] \
#       bash benchmarks/h100_bench.sh llama-3.2-1b | llama-3-8b | bert-base | cost
# Regret and memory prediction via benchmarks/regret_memory.py, or the advisor's cost against collect_env.
# The exact settings of each committed run are in docs/benchmarks/README.md. Needs the wheels carried in .whl/
# (see docs/gpu/README.md).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
if [ "$1" = cost ]; then
    python3 benchmarks/advisor_cost.py --repeats 3 --json $OUT/advisor-cost-h100.json
else
    timeout ${LIMIT:-560} python3 benchmarks/regret_memory.py $OUT --repeats ${REPEATS:-5} --rounds ${ROUNDS:-1} --timeout ${TIMEOUT:-150} --part ${PART:-regret} ${QUANT:+--quantization $QUANT} --models "$@"
fi
ls -la $OUT
