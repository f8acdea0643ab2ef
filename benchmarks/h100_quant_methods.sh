#!/usr/bin/env bash
# Issue 17 item 4 on one H100: do the methods other than bitsandbytes take effect where bitsandbytes does not?
# (one call, about 4-7 minutes)
#  1. a falcon-7b-shaped model (random weights, 4 of 32 layers) smoke-tested with `--quantize quanto-int8`:
#     quanto replaces any nn.Linear (integrations/quanto.py), so FalconLinear becomes QLinear (bitsandbytes: 0 of 9);
#  2. a Mixtral-8x7B-shaped model (2 of 32 layers) with `--quantize fp8` (fine-grained FP8 turns `.experts` into
#     FP8Experts, integrations/finegrained_fp8.py). Its matmul is the Hub kernel kernels-community/finegrained-fp8
#     from transformers 5.4 (data/release_constraints.json fp8_hub_kernel), loaded through `kernels`; this machine
#     has neither `kernels` nor the Hub, so QUANT008 rejects fp8 up front (smoke exits 2). To run it, carry the
#     `kernels` wheel of the release's window (5.17: >=0.16.0,<0.17.0) with its dependencies in .whl/, and a Hub
#     cache holding the kernel at refs/v4 in .hub/ (`KERNELS_CACHE=.hub python -c "from huggingface_hub import
#     snapshot_download; snapshot_download('kernels-community/finegrained-fp8', repo_type='kernel',
#     revision='v4')"` on a machine with network); then the smoke is expected to pass;
#  2b. the same falcon with `--quantize hqq-4bit` (HQQ, integrations/hqq.py): rejected up front by QUANT008 (smoke
#     exit 2): no transformers 5.x quantizes HQQ on the fly (HqqHfQuantizer defines no get_quantize_ops, which
#     core_model_loading.py calls: data/release_constraints.json onthefly_hqq; the second run failed with
#     NotImplementedError at 5.17.0 quantizers/base.py:289). `check` says the same and names the fix;
#  3. `advisor recommend` for the shipped Mixtral-8x7B config on this GPU: fp8 is a candidate only with the kernel.
# Needs .whl/ with pydantic, optimum-quanto and ninja wheels (docs/gpu/README.md lists the pydantic ones; add
# `optimum-quanto==0.2.7 ninja` and hqq 0.2.8 with einops and termcolor: hqq ships only an sdist, so build its
# pure-Python wheel with `pip wheel --no-deps hqq==0.2.8.post1`). Writes into $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PATH=/tmp/site/bin:$PATH
[ -d .hub ] && export KERNELS_CACHE=$PWD/.hub  # a carried Hub cache with kernels-community/finegrained-fp8 (see 2.)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))
try:
    import optimum.quanto, importlib.metadata as m; print('optimum-quanto', m.version('optimum-quanto'))
except Exception as e: print('optimum-quanto missing:', e)" 2>&1 | tee "$OUT/versions.txt"

python3 benchmarks/make_model.py /tmp/falcon7b-4l tiiuae/falcon-7b --layers 4 2>&1 | tail -1
python3 benchmarks/make_model.py /tmp/mixtral-2l mistralai/Mixtral-8x7B-v0.1 --layers 2 2>&1 | tail -1

timeout 200 python3 -m advisor smoke /tmp/falcon7b-4l --quantize quanto-int8 --dtype bfloat16 --attn sdpa --timeout 150 --format json -o "$OUT/smoke-falcon7b-4l-quanto.json"; echo "smoke falcon quanto exit $? (0 expected)"
timeout 200 python3 -m advisor smoke /tmp/falcon7b-4l --quantize hqq-4bit --dtype bfloat16 --attn sdpa --timeout 150 --format json -o "$OUT/smoke-falcon7b-4l-hqq.json" 2> "$OUT/smoke-falcon7b-4l-hqq.err"; echo "smoke falcon hqq exit $? (2 expected on transformers 5.x: QUANT008, no on-the-fly HQQ)"
cat "$OUT/smoke-falcon7b-4l-hqq.err"
python3 -m advisor check /tmp/falcon7b-4l --quantize hqq-4bit --dtype bfloat16 --attn sdpa > "$OUT/check-falcon7b-4l-hqq.txt" 2>&1; echo "check falcon hqq exit $? (1 expected on 5.x: QUANT008 with the release's lines and the fix)"
grep -h -A3 "QUANT008" "$OUT/check-falcon7b-4l-hqq.txt" | head -5
timeout 200 python3 -m advisor smoke /tmp/mixtral-2l --quantize fp8 --dtype bfloat16 --attn sdpa --timeout 150 --format json -o "$OUT/smoke-mixtral-2l-fp8.json" 2> "$OUT/smoke-mixtral-2l-fp8.err"; echo "smoke mixtral fp8 exit $? (2 expected without kernels and the cached Hub kernel: QUANT008; 0 with them)"
cat "$OUT/smoke-mixtral-2l-fp8.err"
python3 -m advisor check /tmp/mixtral-2l --quantize fp8 --dtype bfloat16 --attn sdpa > "$OUT/check-mixtral-2l-fp8.txt" 2>&1; echo "check mixtral fp8 exit $? (1 expected without the kernel)"
grep -h -A2 "QUANT008" "$OUT/check-mixtral-2l-fp8.txt" | head -4
python3 -m advisor doctor --format json 2>/dev/null | python3 -c "import json,sys; s=[x for x in json.load(sys.stdin)['sections'] if x['title']=='Quantization methods'][0]; [print('doctor', i['name'], i['status'], i['value'], '| fix:', i['fix']) for i in s['items'] if i['name'] in ('fp8','hqq','quanto')]"
python3 - <<'PY'
import json, os
out = os.environ.get("OUT", "/tmp/out")
for name in ("smoke-falcon7b-4l-quanto", "smoke-falcon7b-4l-hqq", "smoke-mixtral-2l-fp8"):
    try:
        report = json.load(open(f"{out}/{name}.json"))
    except Exception as exc:
        print(name, "missing:", exc)
        continue
    for a in report.get("attempts", []):
        print(name, a["label"], "ok" if a["ok"] else "FAILED", a.get("error") or "", json.dumps(a.get("quantization")),
              "peak", a.get("peak_memory_bytes"))
    for r in report.get("rejected", []):
        print(name, "rejected:", json.dumps(r)[:400])
PY
python3 -m advisor recommend mistralai/Mixtral-8x7B-v0.1 > "$OUT/recommend-mixtral.txt" 2>&1; echo "recommend mixtral exit $?"
head -3 "$OUT/recommend-mixtral.txt"
python3 -m advisor check tiiuae/falcon-7b --quantize fp8 --dtype bfloat16 --attn sdpa > "$OUT/check-falcon7b-fp8.txt" 2>&1; echo "check falcon fp8 exit $? (1 expected: QUANT008)"
grep -h "QUANT008" "$OUT/check-falcon7b-fp8.txt" | head -2
