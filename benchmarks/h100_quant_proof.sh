#!/usr/bin/env bash
# Issue 17 on one H100: does bitsandbytes quantization take effect? (one call, about 3-5 minutes)
#  1. a falcon-7b-shaped model (random weights, 4 of its 32 layers: the replacement rule is per module, see
#     tests/unit/test_quantizable.py::test_the_replacement_does_not_depend_on_depth) smoke-tested with bnb 8-bit
#     and 4-bit: expected "quantization not applied: 0 of 9 linear weights quantized" (FalconLinear, a subclass
#     of nn.Linear, is skipped by `type(module) is nn.Linear` in transformers' integrations/bitsandbytes.py);
#  2. the Llama-3.2-1B shape (random weights) with bnb 8-bit: expected to pass, with the count of Linear8bitLt;
#  3. `advisor check` / `recommend` for the shipped falcon-7b and Mixtral-8x7B configs on this GPU (QUANT007).
# Needs .whl/ with pydantic and bitsandbytes wheels (docs/gpu/README.md). Writes into $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
{ python3 -c "import torch, transformers, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__, torch.cuda.get_device_name(0))"
  grep -n "type(module) is nn.Linear\|isinstance(module, (nn.Linear, Conv1D))" "$(python3 -c 'import transformers, os; print(os.path.dirname(transformers.__file__))')/integrations/bitsandbytes.py"
} 2>&1 | tee "$OUT/versions.txt"

python3 benchmarks/make_model.py /tmp/falcon7b-4l tiiuae/falcon-7b --layers 4 2>&1 | tail -1
python3 benchmarks/make_model.py /tmp/llama1b meta-llama/Llama-3.2-1B 2>&1 | tail -1
Q8='{"quant_method": "bitsandbytes", "load_in_8bit": true, "load_in_4bit": false}'
Q4='{"quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": false, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, "bnb_4bit_compute_dtype": "bfloat16"}'
echo "[{\"dtype\": \"bfloat16\", \"attn_implementation\": \"sdpa\", \"device_map\": \"cuda:0\", \"quantization_config\": $Q8},
 {\"dtype\": \"bfloat16\", \"attn_implementation\": \"sdpa\", \"device_map\": \"cuda:0\", \"quantization_config\": $Q4},
 {\"dtype\": \"bfloat16\", \"attn_implementation\": \"sdpa\", \"device_map\": \"cuda:0\"}]" > /tmp/quant-configs.json

python3 -m advisor smoke /tmp/falcon7b-4l --config /tmp/quant-configs.json --all --timeout 120 --format json -o "$OUT/smoke-falcon7b-4layers.json"; echo "smoke falcon exit $? (1 expected: the quantized attempts fail)"
python3 -m advisor smoke /tmp/llama1b --quantize 8bit --dtype bfloat16 --attn sdpa --timeout 120 --format json -o "$OUT/smoke-llama1b-8bit.json"; echo "smoke llama 8bit exit $? (0 expected)"
python3 - <<'PY'
import json, os
from advisor.render import OutputFormat, render
from advisor.prove.smoke import SmokeReport
out = os.environ.get("OUT", "/tmp/out")
for name in ("smoke-falcon7b-4layers", "smoke-llama1b-8bit"):
    try:
        report = SmokeReport.model_validate(json.load(open(f"{out}/{name}.json")))
    except Exception as exc:
        print(name, "missing:", exc)
        continue
    text = render(report, OutputFormat.TEXT)
    open(f"{out}/{name}.txt", "w").write(text)
    print(text)
    for a in report.attempts:
        print(" ", a.label, "ok" if a.ok else "FAILED", a.error or "", json.dumps(a.quantization))
PY

python3 -m advisor check tiiuae/falcon-7b --quantize 8bit --dtype bfloat16 --attn sdpa > "$OUT/check-falcon7b-8bit.txt" 2>&1; echo "check falcon exit $?"
python3 -m advisor recommend mistralai/Mixtral-8x7B-v0.1 > "$OUT/recommend-mixtral.txt" 2>&1; echo "recommend mixtral exit $?"
grep -h "QUANT007" "$OUT/check-falcon7b-8bit.txt" "$OUT/recommend-mixtral.txt" | head -4
