#!/usr/bin/env python
"""Build `data/quantizable_share.json`: per model type, the share of weights bitsandbytes really quantizes.

Why this exists (issue 17): transformers 5.x replaces only modules whose type is exactly `nn.Linear` (or
`Conv1D`), so 8-bit / 4-bit loading leaves a subclass such as `FalconLinear` and the fused 3-D experts of the
5.x mixture-of-experts models in bf16, silently. The advisor's weight estimate needs the real share for
configs it cannot build (no torch on the planning machine), and the QUANT007 rule names the reason.

How: every model type of the installed transformers (`CONFIG_MAPPING_NAMES`) is built from its default config
on the meta device (no memory) with its most representative head class, and `advisor.quantizable.breakdown`
applies the replacement rule of that release (see `BNB_RULE` there for the file and line). Types that cannot
be built from a default config are listed under `not_built` with the error, so the table accounts for every
model type. Row layout (compact, one line per type):
`[share of all weights, share of non-embedding weights, parameters, reason kind, reason]`; the reason is set only
below `LOW_SHARE` of the non-embedding weights. Shares are of parameter elements (all in one dtype on the meta
device, so they are byte shares too).

    python scripts/generate_quantizable_share.py [--jobs 2] [--only mixtral falcon] [--output FILE]

Only the installed release is read: other releases (data/attention_history.json covers 4.36-5.24) would need
torch-importing model builds in throwaway installs per release, which is not done yet.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_OUTPUT = REPO / "data" / "quantizable_share.json"

# Head classes in order of preference: the class a user would load for inference.
_MAPPINGS = (
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "MODEL_MAPPING_NAMES",
)


def _class_names(model_type: str) -> list[str]:
    from transformers.models.auto import modeling_auto

    names = []
    for mapping in _MAPPINGS:
        name = getattr(modeling_auto, mapping, {}).get(model_type)
        if isinstance(name, (tuple, list)):
            name = name[0]
        if name and name not in names:
            names.append(name)
    # Sub-model types (`align_text_model`, `blip_vision_model`) have no auto mapping: XConfig -> XModel.
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    config_name = CONFIG_MAPPING_NAMES.get(model_type, "")
    if config_name.endswith("Config") and not names:
        names.append(config_name.removesuffix("Config") + "Model")
    return names


def read_one(model_type: str) -> tuple[str, dict[str, Any]]:
    """Build `model_type` on the meta device and apply the replacement rule; an error is a result too."""
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from transformers import AutoConfig
    from transformers.utils import logging

    from advisor.quantizable import LOW_SHARE, breakdown

    logging.set_verbosity_error()
    try:
        config = AutoConfig.for_model(model_type)
    except Exception as exc:  # noqa: BLE001 - a type that cannot be built is a row of not_built
        return model_type, {"error": f"config: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"}
    errors = []
    for name in _class_names(model_type):
        cls = getattr(transformers, name, None)
        if cls is None:
            errors.append(f"{name}: not importable")
            continue
        try:
            with torch.device("meta"):
                model = cls(config)
        except Exception as exc:  # noqa: BLE001 - the next head class may build
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
            continue
        b = breakdown(model)
        if b.total == 0:
            errors.append(f"{name}: no parameters")
            continue
        low = b.non_embedding_share < LOW_SHARE
        kind, words = b.reason() if low else (None, None)
        return model_type, {"class": name, "row": [round(b.share, 4), round(b.non_embedding_share, 4), b.total, kind, words]}
    return model_type, {"error": "; ".join(errors) or "no model class"}


def _compact(table: dict[str, Any]) -> str:
    """JSON with one line per top-level scalar and per row of the dict-valued keys: compact, readable diffs."""
    parts = []
    for key, value in table.items():
        if isinstance(value, dict) and key != "rule":
            inner = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{inner}\n }}" if value else f" {json.dumps(key)}: {{}}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from advisor.quantizable import BNB_RULE, LOW_SHARE

    if transformers.__version__ != BNB_RULE["transformers"]:
        print(f"warning: BNB_RULE cites transformers {BNB_RULE['transformers']}, installed is "
              f"{transformers.__version__}: check the rule's line first", file=sys.stderr)
    types = sorted(args.only or CONFIG_MAPPING_NAMES)
    started = time.time()
    results: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for model_type, result in pool.map(read_one, types, chunksize=8):
            results[model_type] = result
    rows = {t: r["row"] for t, r in sorted(results.items()) if "row" in r}
    classes = {t: r["class"] for t, r in sorted(results.items()) if "row" in r}
    table = {
        "schema_version": 1,
        "description": "Per model type: the share of weights transformers' bitsandbytes integration replaces "
                       "(8-bit and 4-bit alike), built from the default config on the meta device.",
        "generated_by": "scripts/generate_quantizable_share.py",
        "transformers": transformers.__version__,
        "rule": BNB_RULE,
        "low_share": LOW_SHARE,
        "row_fields": ["share", "non_embedding_share", "params", "reason_kind", "reason"],
        "model_types": rows,
        "classes": classes,
        "not_built": {t: r["error"] for t, r in sorted(results.items()) if "error" in r},
    }
    args.output.write_text(_compact(table), encoding="utf-8")
    low = sum(1 for r in rows.values() if r[3])
    print(f"wrote {args.output}: {len(rows)} built, {low} below {LOW_SHARE:.0%} of non-embedding weights, "
          f"{len(table['not_built'])} not built, {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
