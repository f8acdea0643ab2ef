#!/usr/bin/env bash
# Issue 13 on the device machine, in one call (about 5-8 minutes on one H100):
#   bash benchmarks/h100_memory.sh            -> $OUT/h100-memory-architectures.json (+ the log)
#   bash benchmarks/h100_memory.sh --set followup --name h100-memory-followup.json
#                                             -> the follow-up rows (then: bash benchmarks/memory_table.sh)
# Needs bitsandbytes (and pydantic, unused here) carried in .whl/ (see docs/gpu/README.md). Then, on any machine:
#   python benchmarks/memory_table.py docs/benchmarks/*.json docs/benchmarks/memory/h100-memory-architectures.json
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout ${LIMIT:-470} python3 benchmarks/h100_memory.py "$OUT" "$@" 2>&1 | tee "$OUT/h100-memory.log"
ls -la "$OUT"
