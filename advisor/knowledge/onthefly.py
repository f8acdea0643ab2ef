"""Can the target's transformers quantize a method while it loads an unquantized checkpoint ("on the fly")?

Why: transformers 5.x loads every weight through core_model_loading.py, which asks the quantizer for its ops
(`hf_quantizer.get_quantize_ops()`, 5.17.0 core_model_loading.py:1679) for each parameter that
`param_needs_quantization` when the checkpoint is not pre-quantized. A quantizer that does not define them falls
to `HfQuantizer.get_quantize_ops`, which raises NotImplementedError ("... is not available yet and will be
supported soon.", 5.17.0 quantizers/base.py:289). HQQ is such a quantizer in every 5.x release (5.0.0 .. 5.24.0):
the H200 run of `advisor smoke --quantize hqq-4bit` (docs/gpu/quant-methods/run2/) loaded the config and then
failed with exactly that error. 4.x had the old path (modeling_utils.py calls the quantizer's
`create_quantized_param`), where HQQ quantized on the fly (4.57.6 quantizers/quantizer_hqq.py:165).

The facts are generated per release from the wheels (data/release_constraints.json `quantize_ops_call`,
`quantize_ops_base`, `onthefly_<method>`, each with every release's own line); this module only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from advisor.knowledge.releases import FactRun, load_release_constraints

if TYPE_CHECKING:
    pass

__all__ = ["OnTheFly", "fact_key", "fact_where", "last_release_that_can", "onthefly"]


@dataclass(frozen=True)
class OnTheFly:
    """What one release does when asked to quantize one method on the fly, cited at that release's lines."""

    key: str  # the method's fact key (`onthefly_<key>`)
    release: str  # the stored release standing for the target's transformers
    ok: bool
    cite: str  # transformers <release> <file>:<line>[; ...]
    problem: str | None = None  # one clause for a message, when not ok


def fact_key(method_key: str, quantization: str | None = None) -> str:
    """The `onthefly_<key>` fact of a method of data/quant_methods.json (bitsandbytes: by 8bit / 4bit)."""
    if method_key == "bitsandbytes":
        return "bitsandbytes_4bit" if quantization == "4bit" else "bitsandbytes_8bit"
    return method_key


def fact_where(run: FactRun | None, release: str) -> str:
    """`file:line` of `run` at `release` (its own line where the fact keeps one per release)."""
    if run is None:
        return "?"
    line = (run.lines or {}).get(release, run.line if run.first == release else None)
    return f"{run.file}:{line}" if line is not None else f"{run.file}"


def onthefly(transformers_version: str | None, key: str, *, cache: bool = True) -> OnTheFly | None:
    """The verdict for `key` under `transformers_version`; None when the version is unknown or older than every
    stored release (nothing to say)."""
    rc = load_release_constraints(cache=cache)
    name = f"onthefly_{key}"
    if transformers_version is None or name not in rc.facts:
        return None
    release = rc.stored_release(transformers_version)
    run = rc.at(name, transformers_version)
    if release is None or run is None:
        return None
    call = rc.at("quantize_ops_call", release)
    if run.value in ("get_quantize_ops", "create_quantized_param"):
        how = "defines get_quantize_ops" if run.value == "get_quantize_ops" else "old loading path: create_quantized_param"
        return OnTheFly(key, release, True, f"transformers {release} {fact_where(run, release)} ({how})")
    if run.value is False:
        return OnTheFly(key, release, False, f"transformers {release} {run.file} (absent)",
                        f"transformers {release} has no quantizer for it ({run.file} is absent)")
    base = rc.at("quantize_ops_base", release)
    cite = (f"{run.file} defines no get_quantize_ops; {fact_where(call, release)} calls it for "
            f"every weight quantized while loading; {fact_where(base, release)} raises NotImplementedError")
    problem = (f"transformers {release} cannot quantize it on the fly: its quantizer ({run.file}) defines no "
               f"get_quantize_ops, which {fact_where(call, release)} calls for every weight it quantizes while loading, "
               f"so HfQuantizer.get_quantize_ops raises NotImplementedError ({fact_where(base, release)})")
    return OnTheFly(key, release, False, f"transformers {cite}", problem)


def last_release_that_can(key: str, before: str, *, cache: bool = True) -> str | None:
    """The newest stored release older than `before` that quantizes `key` on the fly (None: none stored)."""
    from packaging.version import Version

    rc = load_release_constraints(cache=cache)
    name = f"onthefly_{key}"
    found = None
    for release in rc.releases:
        if Version(release) >= Version(before):
            break
        run = rc.at(name, release)
        if run is not None and run.value in ("get_quantize_ops", "create_quantized_param"):
            found = release
    return found

