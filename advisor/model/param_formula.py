"""Parameter counts of a config never seen, without transformers: a formula read from a class's meta builds.

Why (issue 14): counting a new config exactly means building its class on the meta device, and importing torch and
transformers for that costs 3-15 s cold, more than `python -m torch.utils.collect_env`. Most new configs are a
shipped architecture with other sizes (a fine-tune's vocabulary, a wider or deeper variant), and a transformer's
parameter shapes are products of its config's sizes. So, where transformers is available (the precompute script),
each shipped model's class is built at its config and again with each field doubled, one at a time:
- a field whose doubling changes nothing is free with exponent 0 (`rope_theta`, `sliding_window`);
- a field that multiplies a dimension or the number of like parameters (the layers, the experts) by exactly 2 or
  1/2 is free with exponent 1 or -1 there (`hidden_size`, `vocab_size`, `num_hidden_layers`; `num_attention_heads`
  halves the head dimension);
- any other effect (a sum such as a fused `(heads + 2 * kv_heads) * head_dim`, a build that fails, a new kind of
  parameter) makes the field fixed: the formula answers only configs with its value.
The formula is then checked against one more build with every free field tripled, and dropped unless it predicts
that build exactly. A config is answered only if every key that is not free equals the base config's (token ids and
bookkeeping aside), and every predicted dimension is a whole number; otherwise the meta build runs as before.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["IGNORED", "derive", "evaluate"]

# keys that never decide a parameter's shape (ids, names, dtype; a pre-quantized checkpoint's quantization_config,
# which the constructor does not read): neither free nor compared
IGNORED = frozenset({
    "_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype", "bos_token_id",
    "eos_token_id", "pad_token_id", "decoder_start_token_id", "sep_token_id", "cls_token_id", "mask_token_id",
    "unk_token_id", "id2label", "label2id", "model_type", "quantization_config",
})
_GROUP = re.compile(r"\.\d+(?=\.)")  # ".3." in "model.layers.3.mlp": a layer or expert index
Exponents = dict[str, int]


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


Group = tuple[int, tuple[int, ...], str, str]  # how many, shape, Breakdown field ("" if none), class / module name


def _groups(config: dict[str, Any], architecture: str | None) -> dict[str, Group] | None:
    """Parameters by name with layer / expert indices folded: {pattern: (how many, shape, what bitsandbytes does
    with them as `quantizable.breakdown` counts it)}."""
    from advisor.model.meta import build_on_meta
    from advisor.model.quantizable import breakdown

    try:
        model = build_on_meta(config, architecture)
    except Exception:  # noqa: BLE001 - a config this class refuses: the field is fixed
        return None
    kinds: dict[int, tuple[str, str]] = {}
    breakdown(model, kinds=kinds)
    groups: dict[str, Group] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            key = _GROUP.sub(".#", f"{module_name}.{name}")
            value: Group = (1, tuple(int(d) for d in p.shape), *kinds.get(id(p), ("", "")))
            if key in groups:
                if groups[key][1:] != value[1:]:
                    return None  # unlike layers (a pattern of sizes): no formula
                value = (groups[key][0] + 1, *value[1:])
            groups[key] = value
    return groups


def _exponent(ratio: float) -> int | None:
    for e in (0, 1, -1):
        if math.isclose(ratio, 2.0**e, rel_tol=1e-12):
            return e
    return None


def derive(config: dict[str, Any], architecture: str | None) -> dict[str, Any] | None:
    """The formula for this class around `config` (needs torch and transformers), or None."""
    base = _groups(config, architecture)
    if not base:
        return None
    count_exp: dict[str, Exponents] = {k: {} for k in base}
    dim_exp: dict[str, list[Exponents]] = {k: [{} for _ in g[1]] for k, g in base.items()}
    free: dict[str, float] = {}
    for field, value in sorted(config.items()):
        if field in IGNORED or not _numeric(value):
            continue
        doubled = _groups({**config, field: value * 2}, architecture)
        if doubled is None or doubled.keys() != base.keys():
            continue
        found: list[tuple[str, int, int | None]] = []  # (group, position or -1 for the count, exponent)
        for key, (n, shape, q, _) in base.items():
            n2, shape2, q2, _ = doubled[key]
            if len(shape2) != len(shape) or q2 != q:
                found.append((key, -1, None))
                break
            found.append((key, -1, _exponent(n2 / n)))
            found.extend((key, i, _exponent(d2 / d)) for i, (d, d2) in enumerate(zip(shape, shape2)))
        if any(e is None for _, _, e in found):
            continue
        free[field] = value
        for key, i, e in found:
            if e:
                (count_exp[key] if i < 0 else dim_exp[key][i])[field] = e
    formula = {
        "architecture": architecture,
        "free": free,
        "fixed": {k: v for k, v in config.items() if k not in IGNORED and k not in free},
        "groups": [[key, n, list(shape), kind, detail, count_exp[key], dim_exp[key]]
                   for key, (n, shape, kind, detail) in base.items()],
    }
    check = {**config, **{f: v * 3 for f, v in free.items()}}
    truth = _groups(check, architecture)
    if truth is None:
        check = {**config, **{f: v * 2 for f, v in free.items()}}
        truth = _groups(check, architecture)
    predicted = _predict(formula, check)
    if truth is None or predicted is None or predicted != truth:
        return None
    return formula


def _predict(formula: dict[str, Any], config: dict[str, Any]) -> dict[str, Group] | None:
    ratio = {f: config[f] / v for f, v in formula["free"].items()}

    def scaled(value: int, exps: Exponents) -> int | None:
        x = value * math.prod(ratio[f] ** e for f, e in exps.items())
        return round(x) if abs(x - round(x)) < 1e-6 and round(x) > 0 else None

    out: dict[str, Group] = {}
    for key, n, shape, kind, detail, count_exp, dims in formula["groups"]:
        count = scaled(n, count_exp)
        sizes = [scaled(d, e) for d, e in zip(shape, dims)]
        if count is None or any(s is None for s in sizes):
            return None
        out[key] = (count, tuple(s for s in sizes if s is not None), str(kind), str(detail))
    return out


def evaluate(formula: dict[str, Any], config: dict[str, Any],
             architecture: str | None) -> tuple[int, int, str | None] | None:
    """(all parameters, those bitsandbytes quantizes, why most are not) of `config` by `formula`, as
    `model.count_on_meta` gives them, or None where the formula does not apply."""
    if formula.get("architecture") != architecture:
        return None
    keys = {k for k in config if k not in IGNORED}
    if keys != set(formula["fixed"]) | set(formula["free"]):
        return None
    if any(config[k] != v for k, v in formula["fixed"].items()):
        return None
    if not all(_numeric(config[f]) for f in formula["free"]):
        return None
    if not _divisible(formula, config):
        return None
    groups = _predict(formula, config)
    if groups is None:
        return None
    return _counts(groups)


def _divisible(formula: dict[str, Any], config: dict[str, Any]) -> bool:
    """A dimension of `f / g` (exponents +1 and -1: hidden_size / num_attention_heads) is a floor division in the
    model and a ratio in the formula; a config the class would refuse (4,100 / 32) can still give whole numbers
    elsewhere (k_proj: 8 x 4,100 / 32 = 1,025). Where the base divides, the new config must divide too."""
    base = formula["free"]
    for *_, count_exp, dims in formula["groups"]:
        for exps in (count_exp, *dims):
            for f in (k for k, e in exps.items() if e > 0):
                for g in (k for k, e in exps.items() if e < 0):
                    if (isinstance(base[f], int) and isinstance(base[g], int) and base[f] % base[g] == 0
                            and (not isinstance(config[f], int) or not isinstance(config[g], int)
                                 or config[f] % config[g] != 0)):
                        return False
    return True


def _counts(groups: dict[str, Group]) -> tuple[int, int, str | None]:
    """What `model.count_on_meta` returns, from the groups: the `Breakdown` rebuilt, then its reason."""
    from advisor.model.quantizable import LOW_SHARE, Breakdown

    fields: dict[str, int] = {"quantizable": 0}
    names: dict[str, dict[str, int]] = {"linear_subclass": {}, "skipped_linear": {}}
    total = 0
    for n, shape, kind, detail in groups.values():
        size = n * math.prod(shape)
        total += size
        if kind:
            fields[kind] = fields.get(kind, 0) + size
        if kind in names:
            names[kind][detail] = names[kind].get(detail, 0) + size
    split = Breakdown(total=total, **fields,
                      subclasses=tuple(sorted(names["linear_subclass"], key=lambda k: -names["linear_subclass"][k])),
                      skipped=tuple(names["skipped_linear"]))
    return total, split.quantizable, split.reason()[1] if split.non_embedding_share < LOW_SHARE else None
