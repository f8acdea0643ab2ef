"""One rank of the tensor-parallel smoke test (issue 30), or the one-process fp32 reference it is compared with.

Started by torch's launcher (`python -m torch.distributed.run --nproc-per-node N -m advisor.prove.tp_worker
REQUEST.json`): RANK and WORLD_SIZE are set and gloo is chosen on the CPU. Without RANK it is the reference.
Every rank writes `rank<R>.pid` on start and `rank<R>.json` at the end into the request's folder, so the parent
can name a rank that hung and kill it; rank 0 also compares its logits with the reference.

Run as a script by a launcher, never imported by the library.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from advisor import env

__all__ = ["main"]


def _rss_bytes() -> int:
    """Resident set size now (/proc/self/statm: pages)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _inputs(request: dict[str, Any]) -> Any:
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randint(3, int(request["vocab_size"]), (int(request["batch"]), int(request["seq_len"])),
                         generator=generator)


def _kwargs(request: dict[str, Any], distributed: bool) -> dict[str, Any]:
    import torch

    kwargs = dict(request["from_pretrained"])
    kwargs["dtype"] = getattr(torch, kwargs.get("dtype", "float32"))
    config = kwargs.pop("distributed_config", None)
    kwargs.pop("tp_plan", None)
    if distributed:
        if config is not None:
            from transformers import DistributedConfig

            kwargs["distributed_config"] = DistributedConfig(**config)
        else:
            kwargs["tp_plan"] = "auto"
    else:
        kwargs["dtype"] = torch.float32  # the reference: one process, float32
    return kwargs


def _logits(model: Any, ids: Any) -> Any:
    import torch

    with torch.inference_mode():
        out = model(input_ids=ids).logits
    full = getattr(out, "full_tensor", None)  # a DTensor under TP: gather the vocabulary shards
    return (full() if callable(full) else out).float()


def run(request: dict[str, Any], folder: Path) -> dict[str, Any]:
    rank = int(env.read(env.RANK) or "-1")
    import torch
    import transformers

    baseline = _rss_bytes()  # the runtime, torch and transformers: what the rank holds before the load

    auto = getattr(transformers, request["auto_class"])
    started = time.perf_counter()
    model = auto.from_pretrained(request["path"], **_kwargs(request, distributed=rank >= 0))
    load_seconds = time.perf_counter() - started
    logits = _logits(model, _inputs(request))
    result: dict[str, Any] = {"ok": True, "rank": rank, "load_seconds": load_seconds,
                              "baseline_rss_bytes": baseline, "peak_rss_bytes": _peak_rss_bytes(),
                              "sharded": sum(1 for p in model.parameters() if type(p.data).__name__ == "DTensor")}

    if rank < 0:
        torch.save(logits, folder / "reference.pt")
    elif rank == 0 and (folder / "reference.pt").exists():
        reference = torch.load(folder / "reference.pt")
        result["max_abs_diff"] = float((logits - reference).abs().max()) if logits.shape == reference.shape else None
        result["shape"] = list(logits.shape)
    return result


def main() -> int:
    from advisor.isolation.lifeline import PARENT_ENV, bind_to_parent

    rank = env.read(env.RANK)
    if rank is not None:  # a rank's parent is the launcher: die with it (the launcher dies with the advisor)
        os.environ[PARENT_ENV] = str(os.getppid())
    bind_to_parent()
    folder = Path(sys.argv[1]).parent
    name = f"rank{rank}" if rank is not None else "reference"
    (folder / f"{name}.pid").write_text(str(os.getpid()), encoding="ascii")
    try:
        result = run(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), folder)
    except Exception as exc:  # the report carries it; the launcher sees a non-zero exit
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result = {"ok": False, "rank": int(rank) if rank is not None else -1, "error": last[:400],
                  "peak_rss_bytes": _peak_rss_bytes()}
    (folder / f"{name}.json").write_text(json.dumps(result), encoding="utf-8")
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
