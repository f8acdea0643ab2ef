#!/usr/bin/env bash
# The GPU session whose outputs are committed under docs/: run on the device machine from the repo root.
# Needs wheels carried in .whl/ (see docs/gpu/README.md): pydantic and bitsandbytes are not in the image.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/nvidia-smi.txt
python3 -m advisor probe --format json -o $OUT/h100-probe.json; echo "probe exit $?"
python3 -m advisor doctor --format markdown -o $OUT/h100-doctor.md; echo "doctor exit $?"
python3 benchmarks/advisor_cost.py --repeats 3 --json $OUT/advisor-cost-h100.json
python3 benchmarks/make_model.py /tmp/llama1b meta-llama/Llama-3.2-1B
python3 -m advisor recommend /tmp/llama1b --format json -o $OUT/h100-recommend-llama1b.json; echo "recommend exit $?"
python3 -m advisor recommend /tmp/llama1b > $OUT/h100-recommend-llama1b.txt
timeout ${SMOKE_TIMEOUT:-380} python3 -m advisor smoke /tmp/llama1b --all --timeout 120 --format json -o $OUT/h100-smoke-llama1b.json; echo "smoke exit $?"
python3 - <<'PY'
import json, os
from advisor.prove.smoke import SmokeReport
from advisor.render import render, OutputFormat
out = os.environ.get("OUT", "/tmp/out")
try:
    r = SmokeReport.model_validate(json.load(open(f"{out}/h100-smoke-llama1b.json")))
    open(f"{out}/h100-smoke-llama1b.txt", "w").write(render(r, OutputFormat.TEXT))
except Exception as e:
    print("no smoke report:", e)
PY
ls -la $OUT
