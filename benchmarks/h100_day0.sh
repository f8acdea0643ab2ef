#!/usr/bin/env bash
# Issue 24 on a GPU box with no network: transformers 5.25.0 (Hub kernels on by default) carried as wheels.
#
# Run from the repository root on the device machine (torch 2.11+cu130 and transformers 5.17 preinstalled, Python
# 3.12). The wheels in .whl/ (git-ignored; docs/gpu/README.md "Issue 24" lists the download command) go into
# /tmp/tf525, first on PYTHONPATH, so the system's transformers 5.17 and huggingface_hub 1.x stay untouched.
#
# Steps (everything under $OUT; the summary is $OUT/day0-summary.json):
#   1. install the wheels, check the imports (versions.json)
#   2. a tiny Llama (the Llama-3.2-1B shape, 2 layers, random weights) saved with save_pretrained
#   3. the plain load `from_pretrained(dtype=bfloat16, device_map="cuda")` + a forward, three ways: HF_HUB_OFFLINE=1,
#      online (no network here), USE_HUB_KERNELS=0 (plain-*.json: the two errors of the issue, and the control)
#   4. advisor probe; advisor recommend, online and offline; advisor check of the plain kwargs and of the plan's
#   5. exactly the plan's kwargs loaded, a forward and a short generate (planned-load-*.json)
#   6. advisor smoke on the plan (must pass), and on the plain kwargs (must stop after 2 with one diagnosis)
#   7. kernelization's speed and memory effect, measured only if the kernels are in the cache (else "unmeasured")
# Each step has its own timeout; the whole run is meant to finish in well under 8 minutes.
set -uo pipefail
START=$SECONDS
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/console.log") 2>&1
SITE=/tmp/tf525
MODEL=/tmp/tiny-llama-day0
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu SKIP_INSTALL=1 PYTHON=... runs the same steps on a CPU box (a dry run)
SUMMARY="$OUT/steps.tsv"
: > "$SUMMARY"

step() {  # step NAME TIMEOUT_S CMD...: run, log, record "name<TAB>exit<TAB>seconds"
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "=== $name ($(date -u +%H:%M:%S))"
  timeout -k 10 "$limit" "$@"
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$SUMMARY"
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
  return 0
}

# 1. the wheels ------------------------------------------------------------------------------------------------
if [ -z "${SKIP_INSTALL:-}" ]; then
  ls .whl/*.whl > /dev/null 2>&1 || { echo "no wheels in .whl/: see docs/gpu/README.md (issue 24)"; exit 2; }
  step install 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false ADVISOR_CACHE_DIR=/tmp/advisor-cache-day0
unset HF_HUB_OFFLINE TRANSFORMERS_OFFLINE USE_HUB_KERNELS
step versions 120 "$PY" - "$OUT/versions.json" <<'PY'
import json, sys
import torch, transformers, kernels, huggingface_hub, pydantic
from importlib import metadata
found = {d: metadata.version(d) for d in ("torch", "transformers", "kernels", "huggingface-hub", "accelerate",
                                          "tokenizers", "safetensors", "pydantic")}
found["cuda"] = torch.version.cuda
found["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
found["capability"] = list(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None
json.dump(found, open(sys.argv[1], "w"), indent=1)
print(found)
assert found["transformers"] == "5.25.0" and found["kernels"] == "0.19.1", "the carried wheels are not the ones imported"
PY

# 2. the model -------------------------------------------------------------------------------------------------
step make-model 180 "$PY" benchmarks/make_model.py "$MODEL" meta-llama/Llama-3.2-1B --layers 2 --dtype bfloat16 --device "$DEVICE"

# 3. the plain load, three ways --------------------------------------------------------------------------------
cat > /tmp/day0_load.py <<'PY'
"""Load MODEL with the kwargs JSON given, run a forward (and a short generate), write one JSON result."""
import json, sys, time, traceback
model_dir, kwargs_json, out = sys.argv[1], sys.argv[2], sys.argv[3]
result = {"kwargs": json.loads(kwargs_json), "ok": False}
try:
    import torch, transformers
    from advisor.plan.emit import to_kwargs
    kwargs = to_kwargs(dict(result["kwargs"]))
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    result["load_s"] = time.perf_counter() - t0
    result["use_kernels"] = bool(getattr(model, "use_kernels", False))
    try:
        from kernels import get_kernelized_layers
        k = get_kernelized_layers(model)
        result["kernelized"] = {"layers": len(k.layers), "funcs": len(k.funcs)}
    except Exception as exc:
        result["kernelized"] = f"{type(exc).__name__}: {exc}"
    ids = torch.randint(10, model.config.vocab_size, (2, 64), device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            model(input_ids=ids)
        sync()
        result["forward_ms"] = (time.perf_counter() - t0) / 5 * 1000
        gen = model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    result["finite"] = bool(torch.isfinite(logits).all())
    result["generated"] = int(gen.shape[1] - ids.shape[1])
    result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated()) if cuda else None
    result["ok"] = True
except BaseException as exc:
    result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:600]
    result["traceback_tail"] = traceback.format_exc().splitlines()[-6:]
json.dump(result, open(out, "w"), indent=1)
print(json.dumps({k: v for k, v in result.items() if k != "traceback_tail"}))
PY
PLAIN="{\"dtype\": \"bfloat16\", \"device_map\": \"$DEVICE\"}"
step plain-offline 180 env HF_HUB_OFFLINE=1 "$PY" /tmp/day0_load.py "$MODEL" "$PLAIN" "$OUT/plain-offline.json"
step plain-online 180 "$PY" /tmp/day0_load.py "$MODEL" "$PLAIN" "$OUT/plain-online.json"
step plain-use-hub-kernels-0 180 env USE_HUB_KERNELS=0 "$PY" /tmp/day0_load.py "$MODEL" "$PLAIN" "$OUT/plain-use-hub-kernels-0.json"

# 4. the advisor's answer --------------------------------------------------------------------------------------
step probe 180 "$PY" -m advisor probe --format json -o "$OUT/probe.json"
step recommend-online 180 "$PY" -m advisor recommend "$MODEL" --format json -o "$OUT/recommend-online.json"
step recommend-online-text 180 "$PY" -m advisor recommend "$MODEL" -o "$OUT/recommend-online.txt"
step recommend-offline 180 env HF_HUB_OFFLINE=1 "$PY" -m advisor recommend "$MODEL" --format json -o "$OUT/recommend-offline.json"
step recommend-python 180 "$PY" -m advisor recommend "$MODEL" --format python -o "$OUT/recommend.py"
echo "$PLAIN" > /tmp/day0_plain.json
"$PY" -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['from_pretrained']))" "$OUT/recommend-online.json" > /tmp/day0_plan.json
echo "plan kwargs: $(cat /tmp/day0_plan.json)"
step check-plain-offline 180 env HF_HUB_OFFLINE=1 "$PY" -m advisor check "$MODEL" --config /tmp/day0_plain.json --format json -o "$OUT/check-plain-offline.json"
step check-plain-online 180 "$PY" -m advisor check "$MODEL" --config /tmp/day0_plain.json --format json -o "$OUT/check-plain-online.json"
step check-plan 180 "$PY" -m advisor check "$MODEL" --config /tmp/day0_plan.json --format json -o "$OUT/check-plan.json"

# 5. exactly the plan's kwargs ---------------------------------------------------------------------------------
step planned-load-online 180 "$PY" /tmp/day0_load.py "$MODEL" "$(cat /tmp/day0_plan.json)" "$OUT/planned-load-online.json"
step planned-load-offline 180 env HF_HUB_OFFLINE=1 "$PY" /tmp/day0_load.py "$MODEL" "$(cat /tmp/day0_plan.json)" "$OUT/planned-load-offline.json"

# 6. smoke: the plan passes; the plain kwargs stop after two with one diagnosis ----------------------------------
step smoke-plan 300 "$PY" -m advisor smoke "$MODEL" --timeout 120 --format json -o "$OUT/smoke-plan.json"
"$PY" - <<'PY'
import json
kw = json.load(open("/tmp/day0_plain.json"))  # the plain kwargs (no use_kernels), four attention / dtype variants
json.dump([{**kw, "attn_implementation": a, "dtype": d} for a, d in
           (("sdpa", "bfloat16"), ("eager", "bfloat16"), ("sdpa", "float16"), ("eager", "float16"))],
          open("/tmp/day0_plain_options.json", "w"))
PY
step smoke-plain 300 "$PY" -m advisor smoke "$MODEL" --config /tmp/day0_plain_options.json --timeout 120 --format json -o "$OUT/smoke-plain.json"
for name in plan plain; do  # the text reports, rendered from the JSON ones (no second run)
  "$PY" -c "import json, sys; from advisor.prove.smoke import SmokeReport; from advisor.render import render, OutputFormat; \
print(render(SmokeReport.model_validate(json.load(open(sys.argv[1]))), OutputFormat.TEXT))" \
    "$OUT/smoke-$name.json" > "$OUT/smoke-$name.txt" 2>&1 || true
done

# 7. kernelization's effect, only where the kernels are cached -------------------------------------------------
DEVICE=$DEVICE "$PY" - "$OUT" "$MODEL" <<'PY'
import json, subprocess, sys, os
out, model = sys.argv[1], sys.argv[2]
plan = json.load(open(f"{out}/recommend-offline.json"))
needed = (plan.get("hub_kernels") or {}).get("needed") or []
effect = {"needed": needed}
if needed and all(n.get("cached") for n in needed):
    runs = {}
    for name, extra in (("kernels-on", {}), ("kernels-off", {"use_kernels": False})):
        kw = json.dumps({"dtype": "bfloat16", "device_map": os.environ.get("DEVICE", "cuda"), **extra})
        subprocess.run([sys.executable, "/tmp/day0_load.py", model, kw, f"{out}/effect-{name}.json"],
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=180, check=False)
        runs[name] = json.load(open(f"{out}/effect-{name}.json"))
    effect["measured"] = {k: {f: v.get(f) for f in ("ok", "forward_ms", "peak_memory_bytes", "kernelized", "error")}
                          for k, v in runs.items()}
else:
    effect["measured"] = "unmeasured: the kernels this load needs are not in the local cache (no network here)"
json.dump(effect, open(f"{out}/kernel-effect.json", "w"), indent=1)
print(json.dumps(effect)[:800])
PY

# summary ----------------------------------------------------------------------------------------------------
"$PY" - "$OUT" "$((SECONDS - START))" <<'PY'
import json, sys
out, total = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except Exception as exc:
        return {"missing": f"{type(exc).__name__}: {exc}"}
steps = [dict(zip(("step", "exit", "seconds"), line.rstrip("\n").split("\t"))) for line in open(f"{out}/steps.tsv")]
rec = load("recommend-online.json")
smoke_plan, smoke_plain = load("smoke-plan.json"), load("smoke-plain.json")
summary = {
    "seconds": total,
    "versions": load("versions.json"),
    "plain_load": {k: {f: load(f"plain-{k}.json").get(f) for f in ("ok", "error", "use_kernels", "kernelized")}
                   for k in ("offline", "online", "use-hub-kernels-0")},
    "plan_kwargs": rec.get("from_pretrained"),
    "plan_hub_kernels": {k: (rec.get("hub_kernels") or {}).get(k) for k in ("outcome", "problem", "precache")},
    "check": {k: load(f"check-{k}.json").get("ok") for k in ("plain-offline", "plain-online", "plan")},
    "planned_load": {k: {f: load(f"planned-load-{k}.json").get(f) for f in ("ok", "error", "use_kernels", "finite")}
                     for k in ("online", "offline")},
    "smoke_plan": {"ok": smoke_plan.get("ok"), "attempts": len(smoke_plan.get("attempts") or [])},
    "smoke_plain": {"ok": smoke_plain.get("ok"), "attempts": len(smoke_plain.get("attempts") or []),
                    "diagnosis": smoke_plain.get("diagnosis")},
    "kernel_effect": load("kernel-effect.json").get("measured"),
    "steps": steps,
}
json.dump(summary, open(f"{out}/day0-summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1)[:4000])
PY
echo "total $((SECONDS - START)) s"
# At most 8 files come back from $OUT: keep the summary and the console, pack the rest into one archive.
( cd "$OUT" && tar czf day0-details.tar.gz --exclude=day0-summary.json --exclude=console.log --exclude=day0-details.tar.gz ./*.json ./*.txt ./*.py ./*.tsv 2>/dev/null \
  && find . -maxdepth 1 -type f ! -name day0-summary.json ! -name console.log ! -name day0-details.tar.gz -delete )
