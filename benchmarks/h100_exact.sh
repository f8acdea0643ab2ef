#!/usr/bin/env bash
# Issue 27 on the device machine in one call (about 6 minutes on one H100), from the repository root, with the
# wheels of docs/gpu/README.md's "Issue 24" list carried in .whl/ (transformers 5.25.0 first on the path):
#   1. benchmarks/h100_memory.py --set issue27-s7: 19 architectures no earlier run measured (then, on any machine
#      with transformers 5.25, benchmarks/memory_table.py);
#   2. benchmarks/h100_memory.py --set whisper: Whisper's peak in generate() (the same table);
#   3. benchmarks/h100_relatives.py: Llama-3-8B relatives measured at the planner's shape (then, on any machine,
#      `python benchmarks/h100_relatives.py --compare $OUT/h100-relatives.json` against the scaled formula);
#   4. whether transformers' grouped-mm experts run in float16/float32 on the GPU (the meta kernel refuses them);
#   5. with COST=1: benchmarks/advisor_cost.py (the commands' cost as a ratio to collect_env) and one traced doctor.
. benchmarks/device_setup.sh  # the carried wheels on PYTHONPATH, $OUT, the GPU recorded
timeout 240 python3 benchmarks/h100_memory.py "$OUT" --set issue27-s7 --name h100-memory-issue27-s7.json 2>&1 | tail -45
timeout 150 python3 benchmarks/h100_memory.py "$OUT" --set whisper --name h100-memory-whisper.json 2>&1 | tail -8
timeout 150 python3 benchmarks/h100_relatives.py "$OUT/h100-relatives.json" 2>&1 | tail -5
python3 - "$OUT/grouped-mm-dtypes.json" <<'PY' 2>&1 | tail -5
import json, sys, torch, transformers
rows = []
for dtype in (torch.bfloat16, torch.float16, torch.float32):
    config = transformers.MixtralConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                                        num_experts_per_tok=2, vocab_size=1000)
    row = {"dtype": str(dtype), "experts_implementation": None}
    try:
        with torch.device("cuda"):
            model = transformers.MixtralForCausalLM._from_config(config, dtype=dtype).eval()
        row["experts_implementation"] = getattr(model.config, "_experts_implementation", None)
        with torch.inference_mode():
            model(torch.zeros((2, 64), dtype=torch.long, device="cuda"))
        row["ok"] = True
    except Exception as exc:  # noqa: BLE001 - the answer is the error
        row.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    rows.append(row)
    print(json.dumps(row))
json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name(0), "rows": rows}, open(sys.argv[1], "w"), indent=1)
PY
if [ "${COST:-0}" = 1 ]; then
  ADVISOR_CACHE_DIR=$(mktemp -d) python3 benchmarks/trace_doctor.py > "$OUT/trace-doctor.json"
  # the kernel child's critical path, stage by stage, in a fresh interpreter
  python3 - > "$OUT/cuda-stages.json" <<'PY'
import json, time
t = [("start", time.perf_counter())]
import torch
t.append(("import torch", time.perf_counter()))
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
t.append(("CUDA context", time.perf_counter()))
from torch.nn.attention import SDPBackend, sdpa_kernel
q = torch.randn(1, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
for backend in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
    with sdpa_kernel(getattr(SDPBackend, backend)):
        torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True); torch.cuda.synchronize()
    t.append((backend, time.perf_counter()))
print(json.dumps({name: round(b - a, 3) for (name, b), (_, a) in zip(t[1:], t)}))
PY
  cat "$OUT/cuda-stages.json"
  timeout 300 python3 benchmarks/advisor_cost.py --repeats 3 --json "$OUT/advisor-cost-h100.json" 2>&1 | tail -14
fi
ls -la "$OUT"
