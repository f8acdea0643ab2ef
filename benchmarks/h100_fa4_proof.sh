#!/usr/bin/env bash
# Issue 29, after `bash benchmarks/fa4_device.sh install` on the same machine: `advisor smoke` with flash_attention_4
# and `advisor bench` with FA4 among the candidates, on the Llama-3-8B shape cut to 4 layers (random weights).
# Needs the advisor's own dependencies from .whl/ (pydantic, pydantic-core, annotated-types, typing-inspection,
# platformdirs, typing-extensions: docs/gpu/README.md); the image's transformers (5.17) is used.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/adv .whl/pydantic-*.whl .whl/pydantic_core-*.whl \
  .whl/annotated_types-*.whl .whl/typing_inspection-*.whl .whl/platformdirs-*.whl .whl/typing_extensions-*.whl || exit 1
# shellcheck disable=SC1091
. /tmp/fa4site/env.sh
export PYTHONPATH="/tmp/adv:$PYTHONPATH:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ADVISOR_CACHE_DIR=/tmp/advisor-cache-fa4
MODEL=/tmp/llama-3-8b-4l
[ -f "$MODEL/config.json" ] || timeout 180 python3 benchmarks/make_model.py "$MODEL" meta-llama/Meta-Llama-3-8B --layers 4
timeout 150 python3 -m advisor smoke "$MODEL" --attn flash_attention_4 --dtype bfloat16 --format json \
  -o "$OUT/smoke-fa4-llama-3-8b-4l.json"; echo "smoke exit $?"
timeout 240 python3 -m advisor bench "$MODEL" --workload prefill --dtype bfloat16 --repeats 5 --format json \
  -o "$OUT/bench-fa4-llama-3-8b-4l.json"; echo "bench exit $?"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/smoke-fa4-llama-3-8b-4l.json"))
print("smoke ok:", s.get("ok"), [(a.get("label"), a.get("ok"), a.get("max_abs_diff")) for a in s.get("attempts", [])])
b = json.load(open(f"{out}/bench-fa4-llama-3-8b-4l.json"))
print(json.dumps(b)[:1500])
PY
