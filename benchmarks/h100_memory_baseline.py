"""What is allocated after a model is built on the GPU besides its parameters, buffers and the cuBLAS workspace
(issue 13): the measured peaks of benchmarks/h100_memory.py include it, the simulation must too.

Usage (GPU machine, repository root): python benchmarks/h100_memory_baseline.py OUT_DIR NAME...
Writes OUT_DIR/mem-baseline.json: per model, memory_allocated() after the warm-up matmul and after the build, the
bytes of parameters and buffers (distinct storages), and every live block that is neither, with its Python frames.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h100_memory as hm


def main() -> None:
    import torch
    import transformers

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.matmul(torch.ones(8, 8, device="cuda"), torch.ones(8, 8, device="cuda"))
    results: list[dict[str, Any]] = []
    for name in sys.argv[2:]:
        hm._free(torch)
        start = torch.cuda.memory_allocated()
        config, cls = hm._config(transformers, name)
        torch.cuda.memory._record_memory_history(max_entries=400000, stacks="python")
        model = hm.build(torch, transformers, config, cls, name, "sdpa", "none")
        torch.cuda.synchronize()
        snap = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        after = torch.cuda.memory_allocated()
        owned: dict[int, int] = {}
        for t in list(model.parameters()) + list(model.buffers()):
            owned[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        others = []
        for seg in snap["segments"]:
            for block in seg["blocks"]:
                if block["state"] != "active_allocated":
                    continue
                addr = block["address"]
                if addr in owned:
                    continue
                frames = [f"{f['filename'].split('site-packages/')[-1]}:{f['line']} {f['name']}"
                          for f in block.get("frames", [])][:8]
                others.append({"bytes": block["size"], "requested": block.get("requested_size"), "frames": frames})
        others.sort(key=lambda b: -b["bytes"])
        results.append({"name": name, "start_bytes": start, "after_build_bytes": after,
                        "param_buffer_bytes": sum(owned.values()), "param_buffer_storages": len(owned),
                        "other_live_bytes": sum(b["bytes"] for b in others), "other_live": others[:40]})
        print(name, start, after, sum(owned.values()), sum(b["bytes"] for b in others), flush=True)
        del model
        (out / "mem-baseline.json").write_text(json.dumps({"torch": torch.__version__,
                                                           "transformers": transformers.__version__,
                                                           "device": torch.cuda.get_device_name(0),
                                                           "models": results}, indent=1))


if __name__ == "__main__":
    main()
