"""Which architectures the simulator runs: every causal-LM class of the installed transformers, at its config
class's defaults, simulated once on meta tensors (issue 27: a figure that cannot be simulated is the closed form).

Usage: python benchmarks/simulate_survey.py [--out docs/benchmarks/memory/simulate-survey-<release>.json] [--parts N]
Each class is simulated as the planner would ask for it on an H100 (bfloat16, batch 2, a 256-token prompt, 8 new
tokens), with SDPA where the class supports it and eager where it does not, each under a 60-second limit. A
default config is not a published model: some classes' defaults do not build (a composite config without
`vocab_size`, a MoE without its expert count), which the row says; those are not simulator gaps.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIMIT_S = 60


class _Late(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Late


def _one(item: tuple[str, str]) -> dict[str, Any]:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from advisor.estimate.simulate import simulate

    model_type, architecture = item
    row: dict[str, Any] = {"model_type": model_type, "architecture": architecture}
    signal.signal(signal.SIGALRM, _alarm)
    try:
        config = {**CONFIG_MAPPING[model_type]().to_dict(), "architectures": [architecture]}
        cls = getattr(transformers, architecture, None)
        attn = "sdpa" if cls is None or getattr(cls, "_supports_sdpa", True) else "eager"
        row["attn"] = attn
        start = time.perf_counter()
        signal.alarm(LIMIT_S)
        result = simulate(config, architecture=architecture, dtype="bfloat16", attn=attn, quantization="none",
                          batch=2, prompt_len=256, seq_len=264, padded=False, device="cuda", capability=(9, 0))
        signal.alarm(0)
        row.update(ok=True, peak_bytes=result.peak_bytes, seconds=round(time.perf_counter() - start, 1))
    except _Late:
        row.update(ok=False, error=f"over {LIMIT_S} s")
    except Exception as exc:  # noqa: BLE001 - the failure is the answer
        signal.alarm(0)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        row.update(ok=False, error=f"{type(exc).__name__}: {first}")
    return row


def main() -> None:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--parts", type=int, default=2, help="processes")
    args = parser.parse_args()
    items = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items())
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.parts, maxtasksperchild=20) as pool:
        rows = pool.map(_one, items, chunksize=1)
    counts = Counter("ok" if r["ok"] else "failed" for r in rows)
    result = {"transformers": transformers.__version__, "classes": len(rows), "simulated": counts["ok"],
              "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    for row in rows:
        if not row["ok"]:
            print(f"{row['model_type']:28} {row['architecture']:36} {row['error'][:110]}")
    print(f"{counts['ok']} of {len(rows)} causal-LM classes simulated (transformers {transformers.__version__})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
