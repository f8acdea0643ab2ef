# Sourced by the device-machine scripts (h100_exact.sh, h100_s8.sh) from the repository root: installs the wheels
# carried in .whl/ (docs/gpu/README.md's "Issue 24" list, transformers 5.25.0 first on the path) into /tmp/site,
# puts them and the checkout on PYTHONPATH, makes $OUT and records the GPU in $OUT/nvidia-smi.txt.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m compileall -q -j 0 /tmp/site >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/nvidia-smi.txt"
