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
FILES=()
for f in docs/benchmarks/memory/h100-memory-issue27.json docs/benchmarks/memory/h100-memory-followup2.json \
    docs/benchmarks/memory/h100-memory-followup.json; do
  [ -f "$f" ] && FILES+=("$f")
done
FILES+=(docs/benchmarks/*.json docs/benchmarks/memory/h100-memory-architectures.json)
# Each row is predicted as recommend/check print it, in fresh analysis caches the script makes (issue 27): a new
# config, a config seen before at another shape, and the shipped models of the bench files (data/memory_formulas.json,
# made by scripts/precompute_memory.py under the same release). Then the closed form alone, for its error bound.
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" benchmarks/memory_table.py "${FILES[@]}" \
  | tee docs/benchmarks/memory/memory-table.md
PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" benchmarks/memory_table.py --method estimated \
  --bound-out data/closed_form_error.json "${FILES[@]}" > docs/benchmarks/memory/memory-table-closed-form.md
