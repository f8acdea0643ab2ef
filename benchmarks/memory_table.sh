#!/usr/bin/env bash
# Regenerate docs/benchmarks/memory/memory-table.md (issue 13) on any machine, with the transformers release the
# H100 runs used (the simulator runs the installed one, and releases differ: 5.24 makes T5's position bias
# contiguous, 5.17 does not, which decides T5's SDPA kernel). From the repository root:
#   bash benchmarks/memory_table.sh            (TF=5.17.0 by default; PYTHON=python to pick the interpreter)
# The newest H100 run goes first: its rows win over the same rows measured earlier.
set -euo pipefail
TF=${TF:-5.17.0}
PYTHON=${PYTHON:-python}
SITE=${TMPDIR:-/tmp}/advisor-transformers-$TF
if [ ! -f "$SITE/transformers/__init__.py" ]; then
  "$PYTHON" -m pip install -q --no-deps --target "$SITE" "transformers==$TF" huggingface_hub==1.33.0 httpx==0.28.1 \
    httpcore==1.0.9 certifi
fi
OUT=docs/benchmarks/memory/memory-table.md
RUN=(env PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" benchmarks/memory_table.py)
# Each row is predicted as recommend/check print it (estimate_memory on the planner's model), in fresh analysis
# caches the script makes (issue 27): a NEW config, a config SEEN before at another shape, and the SHIPPED models
# of the bench files (data/memory_formulas.json, made by scripts/precompute_memory.py under the same release).
{
  echo "# Predicted vs measured peak memory (bash benchmarks/memory_table.sh, transformers $TF)"
  echo
  echo "## Out of sample: docs/benchmarks/memory/h100-memory-issue27.json (18 architectures nothing here was shaped on)"
  echo
  "${RUN[@]}" docs/benchmarks/memory/h100-memory-issue27.json
  echo
  echo "## Shipped models: the advisor bench files (docs/benchmarks/*.json)"
  echo
  "${RUN[@]}" docs/benchmarks/*.json
  echo
  echo "## In sample: the earlier GPU runs"
  echo
  "${RUN[@]}" docs/benchmarks/memory/h100-memory-followup2.json docs/benchmarks/memory/h100-memory-followup.json \
    docs/benchmarks/memory/h100-memory-architectures.json
} | tee "$OUT"
# the closed form alone (the last resort), for its error bound in every `estimated` label
"${RUN[@]}" --method estimated --bound-out data/closed_form_error.json docs/benchmarks/memory/h100-memory-issue27.json \
  docs/benchmarks/memory/h100-memory-followup2.json docs/benchmarks/memory/h100-memory-followup.json \
  docs/benchmarks/*.json docs/benchmarks/memory/h100-memory-architectures.json \
  > docs/benchmarks/memory/memory-table-closed-form.md
