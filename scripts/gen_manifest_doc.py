"""Write docs/manifest.md from the pydantic manifest model: field tables and the full JSON Schema.

Usage: python scripts/gen_manifest_doc.py   (tests/unit/test_manifest.py fails when the file is stale)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INTRO = """\
# Deployment manifest

`advisor check --manifest deploy.yaml` checks every model x target pair of a manifest and exits 1 when
any pair fails (0 when all pass, 2 for a bad manifest). YAML (`.yaml`, `.yml`) and TOML (`.toml`) are
read. A bad manifest is reported on one line with the file, the line and the field, e.g.

    advisor: error: manifest deploy.yaml, line 6, field models[1].from_pretrained.dtype: Input should be 'auto', 'float32', 'float16' or 'bfloat16'; see docs/manifest.md

A manifest can never enable remote code: a `trust_remote_code` key anywhere in it (any value, any
spelling such as `Trust-Remote-Code`) is refused with exit 2. Paths (model folders, snapshot files) are
relative to the manifest. Names the advisor cannot resolve (a missing snapshot, an unknown GPU, a model
that is not local, cached or shipped) are bad input too, reported at their entry's line.

Every format of `advisor check` works with a manifest: `--format text|json|markdown|junit|github`
(see docs/ci.md).

```yaml
models:
  - model: meta-llama/Llama-3.2-1B     # shipped config, hub id in the local HF cache, or a folder
    from_pretrained: recommend          # let the advisor choose (default)
  - model: ./models/classifier          # a folder with config.json, relative to this file
    from_pretrained:                    # the kwargs you deploy with: checked as given
      dtype: float16
      attn_implementation: sdpa
  - gpt2                                # shorthand for {model: gpt2, from_pretrained: recommend}
targets:
  - env: machines/prod-a100.json        # a snapshot from `advisor probe -o FILE`
  - gpu: [A100-80GB, A100-80GB]         # GPUs from the shipped table (two cards)
    assume: [torch==2.6.0, transformers==4.57.1]
  - T4                                  # shorthand: a GPU name (or a .json snapshot path)
  - {cpu: true, name: laptop}
workload:
  batch: 4
  seq_len: 512                         # within every model's positions (a BERT classifier: 512; SEQ001 past them)
```

The same in TOML: `[[models]]` / `[[targets]]` tables, `[models.from_pretrained]` for kwargs and a
`[workload]` table. TOML parsers keep no positions, so for TOML the line reported is the line of the
key (or `[[table]]` header) found along the field's path.

A target given by GPU name plans with this machine's installed libraries (in a pre-commit hook, the
hook's own environment, which has no torch): list what the deployment runs with in `assume`, or use a
snapshot, which records the machine's libraries.

A manifest is read like a config (docs/security.md, "Manifests"): a regular file of at most 1 MiB in UTF-8,
nested at most 64 levels, with at most 200,000 values once YAML aliases are expanded (an alias is counted each
time it is used) and at most 10,000 model x target pairs; past any of these the check stops with exit 2 and one
line naming the limit. Split a larger fleet into several manifests.
"""


def _type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    return str(prop.get("type", "any"))


def render() -> str:
    from advisor.fleet.manifest import Manifest

    schema = Manifest.model_json_schema()
    lines = [INTRO, "## Fields", ""]
    sections = [("Manifest", schema)] + sorted(schema.get("$defs", {}).items())
    for name, body in sections:
        lines += [f"### {name}", "", body.get("description", "").strip(), "",
                  "| field | type | required | default | meaning |", "|---|---|---|---|---|"]
        required = set(body.get("required", []))
        for field, prop in body.get("properties", {}).items():
            default = json.dumps(prop["default"]) if "default" in prop else ""
            lines.append(f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} | {default} | "
                         f"{prop.get('description', '')} |")
        lines.append("")
    lines += ["## JSON Schema", "", "Generated from `advisor.fleet.manifest.Manifest` by `python scripts/gen_manifest_doc.py`.",
              "", "```json", json.dumps(schema, indent=2), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "manifest.md").write_text(render(), encoding="utf-8")
