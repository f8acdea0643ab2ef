"""Which weights bitsandbytes really quantizes: the replacement rule of transformers, applied to a built model.

NOTE (issue 17): transformers 5.x replaces a module by `Linear8bitLt` / `Linear4bit` only when
`isinstance(module, Conv1D) or type(module) is nn.Linear` (transformers 5.24.0,
`integrations/bitsandbytes.py` line 189, `replace_with_bnb_linear`). A subclass of `nn.Linear` (falcon's
`FalconLinear`) and the fused 3-D expert parameters of the 5.x mixture-of-experts models (`experts.gate_up_proj`,
`experts.down_proj`) stay in the compute dtype; so do the skipped modules: `get_keys_to_not_convert` (the output
embeddings, tied weights and the last parameter's module; `quantizers/base.py` line 39) plus
`llm_int8_skip_modules` and `model._keep_in_fp32_modules` (`quantizers/quantizer_bnb_8bit.py` lines 125-127,
`quantizer_bnb_4bit.py` lines 121-123), matched by `should_convert_module` (`quantizers/quantizers_utils.py` line 26).

The rule changed across releases: 4.x and 5.0-5.4 test `isinstance(module, (nn.Linear, Conv1D))` (any subclass
is replaced; 4.57.6 line 167, 5.4.0 line 184), 5.5 onwards `type(module) is nn.Linear`. `read_rule` reads which
one a release has from its own `integrations/bitsandbytes.py` (text only: importing it needs bitsandbytes), with
the file and line, and `breakdown` applies it.

`breakdown(model)` runs on a model built on the meta device (no memory) and splits its parameters into what is
replaced and why the rest is not. The skip list comes from the installed transformers' own functions, so it
follows the release; the type test follows `read_rule` of the installed release, and
`tests/unit/test_quantizable.py` fails when the cited lines change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from advisor.knowledge.installed import installed_version
from advisor.knowledge.quantizable_share import (
    REASONS,
    ShareRow,
    covered_release,
    default_release,
    installed_rule,
    kind_of,
    share_table,
    value_at,
)

if TYPE_CHECKING:
    from advisor.knowledge.quant_methods import Method
    from advisor.model.spec import ModelSpec

__all__ = [
    "LOW_SHARE",
    "Breakdown",
    "at_release",
    "quantizable_by",
    "breakdown",
    "share_row",
]

# Below this share of the non-embedding weights, 8-bit/4-bit loading saves too little to be worth it (issue 17).
LOW_SHARE = 0.6


@dataclass(frozen=True)
class Breakdown:
    """Parameter counts of one built model by what bitsandbytes does with them (element counts: one dtype)."""

    total: int
    quantizable: int
    embedding: int = 0
    fused_experts: int = 0
    linear_subclass: int = 0
    conv: int = 0
    skipped_linear: int = 0
    subclasses: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def share(self) -> float:
        return self.quantizable / self.total if self.total else 0.0

    @property
    def non_embedding_share(self) -> float:
        rest = self.total - self.embedding
        return self.quantizable / rest if rest > 0 else 0.0

    def reason(self) -> tuple[str, str]:
        """(kind, words) for what keeps the largest part of the non-embedding weights out of bitsandbytes."""
        parts = {
            "fused-experts": (self.fused_experts, REASONS["fused-experts"]),
            "linear-subclass": (self.linear_subclass, REASONS["linear-subclass"].format(
                ", ".join(self.subclasses[:2]) or "a class")),
            "convolution": (self.conv, REASONS["convolution"]),
            "skipped": (self.skipped_linear, REASONS["skipped"].format(", ".join(self.skipped[:3]))),
        }
        kind, (count, words) = max(parts.items(), key=lambda kv: kv[1][0])
        if count == 0:
            return "other", REASONS["other"]
        return kind, words


def breakdown(model: Any, mode: str | None = None, kinds: dict[int, tuple[str, str]] | None = None) -> Breakdown:
    """Split `model`'s parameters by a bitsandbytes replacement rule (see module doc).

    `mode` is `ReplacementRule.mode`; None reads the installed release's rule (exact type when unreadable).
    `kinds`, when given, receives `id(parameter) -> (field of Breakdown it was counted in, class or module name)`
    for every parameter counted in one (advisor.model.param_formula rebuilds a Breakdown from them).
    """
    import torch
    from torch import nn

    if mode is None:
        rule = installed_rule()
        mode = rule.mode if rule is not None else "exact"
    subclass_ok = mode == "isinstance"

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - every supported release has it
        Conv1D = ()  # type: ignore[assignment,misc]
    skips = _skip_patterns(model)
    convert = _matcher()
    counted: set[int] = set()
    total = quantizable = embedding = experts = subclass = conv = skipped = 0
    subclasses: dict[str, int] = {}
    skipped_names: list[str] = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in own)
        size = sum(p.numel() for p in own)
        weight = sum(p.numel() for p in own if p.dim() == 2)
        total += size
        kind, detail, picked = "", "", own
        if isinstance(module, Conv1D) or type(module) is nn.Linear or (subclass_ok and isinstance(module, nn.Linear)):
            picked = [p for p in own if p.dim() == 2]
            if convert(name, skips):
                quantizable += weight
                kind = "quantizable"
            else:
                skipped += weight
                skipped_names.append(name.split(".")[-1])
                kind, detail = "skipped_linear", name.split(".")[-1]
        elif isinstance(module, nn.Linear):
            subclass += weight
            subclasses[type(module).__name__] = subclasses.get(type(module).__name__, 0) + weight
            kind, detail, picked = "linear_subclass", type(module).__name__, [p for p in own if p.dim() == 2]
        elif isinstance(module, nn.Embedding):
            embedding += size
            kind = "embedding"
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            conv += size
            kind = "conv"
        elif "expert" in name.rsplit(".", 1)[-1].lower() or "expert" in type(module).__name__.lower():
            experts += sum(p.numel() for p in own if p.dim() >= 3)  # gate_up_proj (E, 2I, H), down_proj (E, H, I)
            kind, picked = "fused_experts", [p for p in own if p.dim() >= 3]
        if kinds is not None and kind:
            kinds.update((id(p), (kind, detail)) for p in picked)
    names = tuple(sorted(subclasses, key=lambda k: -subclasses[k]))
    return Breakdown(total=total, quantizable=quantizable, embedding=embedding, fused_experts=experts,
                     linear_subclass=subclass, conv=conv, skipped_linear=skipped, subclasses=names,
                     skipped=tuple(dict.fromkeys(skipped_names)))


def _skip_patterns(model: Any) -> list[str]:
    """What `_process_model_before_weight_loading` of the bnb quantizers passes as `modules_to_not_convert`
    when `llm_int8_skip_modules` is not set: transformers' own `get_modules_to_not_convert`."""
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    try:
        from transformers.quantizers.base import HfQuantizer

        return list(HfQuantizer.get_modules_to_not_convert(model, None, keep))
    except Exception:  # noqa: BLE001, S110 - an older release: its module-level function (4.x integrations)
        pass
    try:
        from transformers.integrations.bitsandbytes import (  # type: ignore[attr-defined]  # 4.x only
            get_keys_to_not_convert,
        )

        return [*get_keys_to_not_convert(model), *keep]
    except Exception:  # noqa: BLE001 - a model without output embeddings: the default
        return ["lm_head", *keep]


def _matcher() -> Any:
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module

        return should_convert_module
    except ImportError:
        return _convert_4x


def _convert_4x(name: str, patterns: list[str] | None) -> bool:
    """4.x `_replace_with_bnb_linear`: skipped when the child's own name is listed, or a listed key is the full
    name or a dotted prefix-part of it (4.57.6 `integrations/bitsandbytes.py` lines 167-171)."""
    keys = patterns or []
    leaf = name.rsplit(".", 1)[-1]
    return leaf not in keys and not any(key + "." in name or key == name for key in keys)


def share_row(model_type: str, release: str | None = None, *, cache: bool = True) -> ShareRow | None:
    """The row for `model_type` at a covered `release` (default: `default_release()`), or None when that release
    did not build it or is not covered. The installed release, when the table lacks it, is read on demand
    (`cache=False`: --no-cache, without the user's analysis cache)."""
    table = share_table()
    releases = list(table.get("releases", []))
    release = release or default_release()
    if release is not None and release not in releases and covered_release(release) == (release, "installed"):
        row = _installed_row(model_type, cache)
    else:
        runs = table.get("model_types", {}).get(model_type)
        if release is None or release not in releases or not isinstance(runs, list):
            return None
        row = value_at(runs, release, releases)
    if not isinstance(row, list):
        return None
    share, non_emb, params, kind, reason = row
    return ShareRow(model_type=model_type, share=share, non_embedding_share=non_emb, params=params,
                    reason=reason, kind=kind, release=release or "")


def _installed_row(model_type: str, cache: bool) -> list[Any] | None:
    """The table row of `model_type` for the installed release, built as the generator builds it (cached)."""
    from advisor.io import analysis_cache

    found = analysis_cache.cached("share-row", _read_row_json, model_type, transformers=installed_version(),
                                   use=cache)
    return found if isinstance(found, list) else None


def _read_row_json(model_type: str) -> list[Any] | None:
    result = read_row(model_type)
    return result.get("row")


# Head classes in order of preference: the class a user would load for inference.
_HEAD_MAPPINGS = (
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "MODEL_MAPPING_NAMES",
)


def _class_names(model_type: str) -> list[str]:
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # type: ignore[attr-defined]

    names: list[str] = []
    for mapping in _HEAD_MAPPINGS:
        name = getattr(modeling_auto, mapping, {}).get(model_type)
        if isinstance(name, (tuple, list)):
            name = name[0]
        if name and name not in names:
            names.append(name)
    # Sub-model types (`align_text_model`, `blip_vision_model`) have no auto mapping: XConfig -> XModel.
    config_name = CONFIG_MAPPING_NAMES.get(model_type, "")
    if config_name.endswith("Config") and not names:
        names.append(config_name.removesuffix("Config") + "Model")
    return names


def _first_line(exc: BaseException, limit: int) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:limit] if str(exc) else ''}"


def read_row(model_type: str) -> dict[str, Any]:
    """Build `model_type` of the importable transformers on the meta device from its default config, with its
    most representative head class, and apply the release's replacement rule: `{"class", "row"}` (a table row:
    share, non-embedding share, parameters, reason kind, reason), or `{"error"}` when it cannot be built."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import transformers
    from transformers import AutoConfig
    from transformers.utils import logging

    logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        config = AutoConfig.for_model(model_type)
    except Exception as exc:  # noqa: BLE001 - a type that cannot be built is a row of not_built
        return {"error": f"config: {_first_line(exc, 160)}"}
    errors = []
    for name in _class_names(model_type):
        try:
            cls = getattr(transformers, name, None)
        except Exception as exc:  # noqa: BLE001 - a lazy import that fails (5.3.0's Sam3Model): a row of not_built
            errors.append(f"{name}: {_first_line(exc, 120)}")
            continue
        if cls is None:
            errors.append(f"{name}: not importable")
            continue
        try:
            with torch.device("meta"):
                model = cls(config)
        except Exception as exc:  # noqa: BLE001 - the next head class may build
            errors.append(f"{name}: {_first_line(exc, 120)}")
            continue
        try:  # from_pretrained ties embeddings; 5.0.0's constructor does not (GPT-2 would count an lm_head twice)
            model.tie_weights()
        except Exception:  # noqa: BLE001, S110 - a model whose tying fails on meta is counted untied, as built
            pass
        b = breakdown(model)
        if b.total == 0:
            errors.append(f"{name}: no parameters")
            continue
        low = b.non_embedding_share < LOW_SHARE
        kind, words = b.reason() if low else (None, None)
        return {"class": name, "row": [round(b.share, 4), round(b.non_embedding_share, 4), b.total, kind, words]}
    return {"error": "; ".join(errors) or "no model class"}


def at_release(model: ModelSpec, version: str | None, *, cache: bool = True) -> ModelSpec:
    """`model` with its quantizable count for the target's transformers `version` (issue 17).

    The count of `model` follows the release it was made with (the installed one, or the table's). For another
    target release the table's row at that release decides: where it equals the row at the counted release the
    exact count stands; where it differs (the rule or the classes changed) the table's share of all weights is
    applied. A release the table does not cover keeps the count as it is (QUANT007 says so).
    """
    covered = covered_release(version)
    if covered is None or covered[0] == model.quantizable_release:
        return model
    release = covered[0]
    target = share_row(model.model_type, release, cache=cache)
    if target is None:
        return model
    counted = share_row(model.model_type, model.quantizable_release, cache=cache) if model.quantizable_release else None
    same = counted is not None and (counted.share, counted.reason) == (target.share, target.reason)
    quantizable = model.quantizable_param_count if same else int(model.param_count * target.share)
    note = model.quantizable_note if same else target.reason
    return model.model_copy(update={"quantizable_param_count": quantizable, "quantizable_note": note,
                                    "quantizable_release": release})


def quantizable_by(model: ModelSpec, method: Method) -> int:
    """Parameters `method` stores in its format: what bitsandbytes replaces, or, where the method also takes what
    bitsandbytes leaves (an nn.Linear subclass for an isinstance rule, fused experts for FP8), every weight but
    the input and output embeddings (`vocab_size x hidden_size` each: the methods skip `lm_head` too)."""
    from advisor.knowledge.quant_methods import handles

    kind = kind_of(model.quantizable_note) if model.quantizable_note else None
    if kind is None or not handles(method, kind):
        return model.quantizable_param_count
    embeddings = 2 * model.vocab_size * model.hidden_size
    return max(model.quantizable_param_count, model.param_count - embeddings)
