"""Where a first `doctor`'s kernel child spends its time on a GPU (issue 27), as one JSON object.

Usage: python benchmarks/kernel_timeline.py OUT.json   (on the GPU machine, from the repository root)
Three layouts of the same proofs doctor runs (the installed kernels, flex_attention deferred), each in fresh
children, the page cache warm: (1) `import torch` alone; (2) one batch child (what doctor does), with the time
each kernel's result line arrived; (3) the batch split in two children started together (torch's SDPA backends
| the library kernels). Seconds from each child's spawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.isolation.prestart import RUN_FILE, WORKER
from advisor.probe.deferral import deferred
from advisor.probe.kernels import kernel_specs
from advisor.probe.packages import probe_libraries


def _child(request: dict[str, Any] | None, times: dict[str, Any], name: str) -> None:
    """One child: `import torch` only (request None) or the worker with `request`; each output line timed."""
    start = time.perf_counter()
    if request is None:
        proc = subprocess.run([sys.executable, "-c", "import torch"], check=False)
        times[name] = {"total": round(time.perf_counter() - start, 3), "rc": proc.returncode}
        return
    child = subprocess.Popen([sys.executable, "-c", RUN_FILE, str(WORKER)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(request))
    child.stdin.close()
    lines = []
    for line in child.stdout:
        message = json.loads(line)
        lines.append([round(time.perf_counter() - start, 3), message.get("start") or message.get("kernel"),
                      "start" if "start" in message else bool(message.get("ok"))])
    child.wait()
    times[name] = {"total": round(time.perf_counter() - start, 3), "lines": lines}


def _together(requests: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    times: dict[str, Any] = {}
    start = time.perf_counter()
    threads = [threading.Thread(target=_child, args=(r, times, n)) for n, r in requests.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall": round(time.perf_counter() - start, 3), **times}


def main() -> None:
    import torch

    major, _ = torch.cuda.get_device_capability(0)
    dtypes = ["float32", "float16", *(["bfloat16"] if major >= 8 else [])]
    specs = deferred(kernel_specs(probe_libraries(import_checks=False)))[0]
    request = [s.request("cuda:0", dtypes) for s in specs]
    sdpa = [r for r in request if r["kind"].startswith("sdpa_")]
    rest = [r for r in request if not r["kind"].startswith("sdpa_")]
    _child(None, {}, "warm the page cache")
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "kernels": [r["kind"] for r in request], "dtypes": dtypes,
              "import torch": _together({"import torch": None}),
              "one batch": _together({"batch": {"batch": request}}),
              "two batches": _together({"sdpa": {"batch": sdpa}, "rest": {"batch": rest}} if rest else
                                       {"sdpa": {"batch": sdpa}}),
              "one batch again": _together({"batch": {"batch": request}})}
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
