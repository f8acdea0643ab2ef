#!/usr/bin/env bash
# The probe and doctor on the GPU, with each installed kernel run once (issue 11 part 4): the snapshot's
# `kernel_runs` shows which SDPA backends, flex_attention and bitsandbytes int8/NF4 really ran there.
# Needs the wheels of docs/gpu/README.md in .whl/ (pydantic, pydantic-core, annotated-types,
# typing-inspection, platformdirs, bitsandbytes), carried to the device: run(carry=[".whl"]).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
start=$(date +%s)
python3 -m advisor probe --format json -o "$OUT/h100-probe.json"; echo "probe exit $? ($(( $(date +%s) - start )) s)"
python3 -m advisor doctor --format markdown -o "$OUT/h100-doctor.md"; echo "doctor exit $?"
python3 - "$OUT/h100-probe.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["kernel_runs"]
for name, run in runs.items():
    state = run["runs"] if isinstance(run["runs"], bool) else "not run: " + run["runs"]["reason"]
    print(f"{name:36} {state} {run.get('error') or ''}")
    for case in run.get("cases", []):
        if not case["runs"]:
            print(f"    {case['dtype']} head_dim={case['head_dim']}: {case['error']}")
PY
