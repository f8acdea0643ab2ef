"""When `advisor doctor`'s children start and end and when it imports torch, as one JSON object (issue 27).

Usage: ADVISOR_CACHE_DIR=$(mktemp -d) python benchmarks/trace_doctor.py > trace.json   (an empty cache: a first run)
It runs the CLI in this process with subprocess.Popen and the import of torch / transformers timed; what the
H100 runs of issue 27 printed is in docs/gpu/doctor-trace-h100/.
"""
import os, sys, time, subprocess, threading, runpy, json
T0 = time.perf_counter()
log = []
_orig_init = subprocess.Popen.__init__
_orig_wait = subprocess.Popen.wait
def init(self, args, *a, **k):
    self._t = time.perf_counter() - T0
    _orig_init(self, args, *a, **k)
    self._args = args if isinstance(args, str) else " ".join(map(str, args))[:160]
    log.append(["start", round(self._t, 3), self._args, threading.current_thread().name])
subprocess.Popen.__init__ = init
_orig_comm = subprocess.Popen.communicate
def comm(self, *a, **k):
    r = _orig_comm(self, *a, **k)
    log.append(["end", round(time.perf_counter() - T0, 3), getattr(self, "_args", "?")])
    return r
subprocess.Popen.communicate = comm
import builtins
_imp = builtins.__import__
marks = {}
def imp(name, *a, **k):
    first = name not in sys.modules and name in ("torch", "transformers")
    t = time.perf_counter()
    r = _imp(name, *a, **k)
    if first and name in sys.modules:
        marks[name] = [round(t - T0, 3), round(time.perf_counter() - T0, 3), threading.current_thread().name]
    return r
builtins.__import__ = imp
sys.argv = ["advisor", "doctor", "--format", "json"]
out = open(os.devnull, "w"); so = sys.stdout; sys.stdout = out
try:
    runpy.run_module("advisor", run_name="__main__")
except SystemExit:
    pass
sys.stdout = so
print(json.dumps({"total": round(time.perf_counter() - T0, 3), "imports": marks, "children": log}, indent=0))
