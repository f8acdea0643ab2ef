#!/usr/bin/env bash
# Issue 12 on the device machine, two calls of at most 9 minutes each (see benchmarks/h100_measure.py):
#   bash benchmarks/h100_measure.sh 1    # depth check (full vs 4 layers: llama, mistral, t5) + 5 more architectures
#   bash benchmarks/h100_measure.sh 2    # 8 more architectures + `advisor tune` on Llama-2-7B + smoke fidelity
# then, here: python benchmarks/h100_measure.py --merge OUT_DIR data/measurements/h100.json
# Needs the wheels carried in .whl/ (docs/gpu/README.md; add platformdirs to that list).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}
export ADVISOR_CACHE_DIR=/tmp/advisor-cache   # the store and analysis cache stay on the device (OUT returns few files)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
timeout ${LIMIT:-500} python3 benchmarks/h100_measure.py --part "$1" "$OUT" 2>&1 | tee "$OUT/h100-measure-part$1.log"
rm -rf "$OUT/configs" /tmp/fidelity-model-*
ls -la "$OUT"
