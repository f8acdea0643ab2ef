#!/usr/bin/env bash
# Issue 12 on one H100 (one call, about 3-4 minutes): `advisor tune` on a 7B decoder with its default budget,
# the smoke fidelity figures (fp32 and dequantized references), and smoke tests of a random Llama-3.2-1B in
# bitsandbytes 8-bit and 4-bit (the 4-bit plan was rejected on random weights before). Writes into $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ADVISOR_CACHE_DIR=/tmp/advisor-cache
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
start=$(date +%s)
python3 -m advisor tune meta-llama/Llama-2-7b-hf --format json -o "$OUT/tune-llama-2-7b.json"; echo "tune exit $? in $(( $(date +%s) - start )) s"
python3 benchmarks/h100_measure.py --part 4 "$OUT" 2>&1 | grep -v "Loading weights\|MatMul8bit" | tail -6
python3 benchmarks/make_model.py /tmp/llama1b meta-llama/Llama-3.2-1B 2>&1 | tail -1
for q in 4bit 8bit; do
  python3 -m advisor smoke /tmp/llama1b --quantize $q --dtype bfloat16 --attn sdpa --timeout 120 --format json -o "$OUT/smoke-llama1b-$q.json"
  echo "smoke llama1b $q exit $?"
done
rm -rf "$OUT/configs"
