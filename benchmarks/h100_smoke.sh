#!/usr/bin/env bash
# Smoke-test every unquantized candidate and the 8-bit / 4-bit SDPA candidates of a 1.24B Llama (random
# weights, Llama-3.2-1B shape) on this machine's GPU, and time the advisor against collect_env.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
python3 benchmarks/advisor_cost.py --repeats 3 --json $OUT/advisor-cost-h100.json
python3 benchmarks/make_model.py /tmp/llama1b meta-llama/Llama-3.2-1B > /dev/null 2>&1
python3 -m advisor smoke /tmp/llama1b --all --quantize none --timeout 120 --format json -o $OUT/smoke-none.json; echo "smoke none exit $?"
python3 -m advisor smoke /tmp/llama1b --all --quantize 8bit --dtype bfloat16 --attn sdpa --timeout 120 --format json -o $OUT/smoke-8bit.json; echo "smoke 8bit exit $?"
python3 -m advisor smoke /tmp/llama1b --all --quantize 4bit --dtype bfloat16 --attn sdpa --timeout 120 --format json -o $OUT/smoke-4bit.json; echo "smoke 4bit exit $?"
python3 - <<'PY'
import json, os
from advisor.prove.smoke import SmokeReport
from advisor.render import render, OutputFormat
out = os.environ.get("OUT", "/tmp/out")
attempts = []
for name in ("none", "8bit", "4bit"):
    try:
        attempts += json.load(open(f"{out}/smoke-{name}.json"))["attempts"]
    except Exception as e:
        print(name, "missing:", e)
ok = [a for a in attempts if a["ok"]]
merged = {"schema_version": 1, "ok": bool(ok), "model": "/tmp/llama1b (LlamaForCausalLM, 1.24B params, random weights)",
          "reference": json.load(open(f"{out}/smoke-none.json"))["reference"], "config": ok[0]["from_pretrained"] if ok else None, "attempts": attempts}
json.dump(merged, open(f"{out}/h100-smoke-llama1b.json", "w"), indent=1)
open(f"{out}/h100-smoke-llama1b.txt", "w").write(render(SmokeReport.model_validate(merged), OutputFormat.TEXT))
print(open(f"{out}/h100-smoke-llama1b.txt").read())
PY
