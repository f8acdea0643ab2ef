#!/usr/bin/env bash
# Issue 17 / QUANT009 on one GPU: checkpoints that are already quantized (one call, about 3 minutes).
#  1. the Llama-3.2-1B shape (random weights) quantized by bitsandbytes (NF4 + double quantization, LLM.int8) and
#     saved: the plan's weight figure against memory_allocated after from_pretrained with the plan's kwargs
#     (benchmarks/prequantized_memory.py);
#  2. `advisor smoke` of the saved NF4 checkpoint with the plan (no quantization_config of its own);
#  3. `advisor recommend` of a GPTQ checkpoint config here (gptqmodel is not on the device: QUANT009 expected).
# Needs .whl/ with pydantic and bitsandbytes wheels (docs/gpu/README.md). Writes into $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 benchmarks/make_model.py /tmp/llama1b meta-llama/Llama-3.2-1B 2>&1 | tail -1
python3 benchmarks/prequantized_memory.py /tmp/llama1b /tmp/prequant "$OUT/prequantized-memory.json" 2>&1 | grep -v Warning
python3 -m advisor recommend /tmp/prequant/bnb-nf4-double -o "$OUT/recommend-bnb-nf4.txt"; echo "recommend nf4 exit $?"
python3 -m advisor smoke /tmp/prequant/bnb-nf4-double --timeout 120 --format json -o "$OUT/smoke-bnb-nf4.json"; echo "smoke nf4 exit $?"
python3 -m advisor smoke /tmp/prequant/bnb-nf4-double --timeout 120 -o "$OUT/smoke-bnb-nf4.txt"
mkdir -p /tmp/gptq && python3 - <<'PY'
import json
from transformers import GPTQConfig
config = json.load(open("/tmp/llama1b/config.json"))
config["quantization_config"] = json.loads(json.dumps(GPTQConfig(bits=4, group_size=128).to_dict(), default=str))
json.dump(config, open("/tmp/gptq/config.json", "w"))
PY
python3 -m advisor recommend /tmp/gptq -o "$OUT/recommend-gptq.txt"; echo "recommend gptq exit $? (1 expected: gptqmodel missing)"
cat "$OUT"/*.txt | head -80
