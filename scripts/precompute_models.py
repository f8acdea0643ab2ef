"""Regenerate data/model_analysis.json: the shipped models' parameter counts and attention flags.

Usage: python scripts/precompute_models.py
With this file, `advisor recommend/check` on a shipped model neither builds it on the meta device nor
imports transformers (issue 14). Counts are keyed by the hash of what they depend on
(`advisor.model_analysis.count_key`) and stamped with the counting code's version, so a changed
`_count_on_meta` ignores stale counts until this script is run again; attention flags are used only when
the installed transformers is the release recorded here. tests/unit/test_analysis_cache.py checks drift.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor import analysis_cache  # noqa: E402
from advisor.knowledge import data_dir, load_knowledge  # noqa: E402
from advisor.model import _count_on_meta, describe_config  # noqa: E402
from advisor.model_analysis import PRECOMPUTED_FILE, count_key, counting_version  # noqa: E402
from advisor.support import _read_installed  # noqa: E402


def build() -> dict[str, object]:
    """Count every shipped model on the meta device and read its class's attention flags."""
    counts: dict[str, list[int]] = {}
    support: dict[str, dict[str, bool]] = {}
    models: dict[str, dict[str, object]] = {}
    with analysis_cache.disabled():
        for shipped in load_knowledge().models:
            config = dict(shipped.config)
            architectures = config.get("architectures") or []
            architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else None
            digest = analysis_cache.content_hash(count_key(config, architecture, False))
            counted = _count_on_meta(copy.deepcopy(config), architecture, False)  # it may edit nested dicts
            if counted is None:
                raise SystemExit(f"{shipped.hub_id}: the meta-device build failed; is transformers installed?")
            counts[digest] = list(counted)
            spec = describe_config(config, name=shipped.hub_id, source="shipped")
            flags = _read_installed(spec)
            if flags is not None:
                support[analysis_cache.content_hash({"model_type": spec.model_type, "architecture": architecture})] = flags
            models[shipped.hub_id] = {"param_count": counted[0], "quantizable_param_count": counted[1],
                                      "attention_support": flags}
    return {
        "schema_version": 1,
        "generated_by": "scripts/precompute_models.py",
        "transformers": analysis_cache.transformers_version(),
        "counting_version": counting_version(),
        "parameter_counts": counts,
        "attention_support": support,
        "models": models,
    }


def main() -> None:
    out = data_dir() / PRECOMPUTED_FILE
    table = build()
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(table['models'])} models, transformers {table['transformers']})")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
