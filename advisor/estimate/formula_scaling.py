"""A relative of a shipped model gets its exact memory formula without torch: the shipped one, scaled (issue 27).

Why: a config never seen (a fine-tune's vocabulary, a wider or deeper variant of a shipped architecture) had to be
simulated, and importing torch and transformers for that costs more than `python -m torch.utils.collect_env`. A
trace formula's sizes (advisor.estimate.trace_formula) are products of the config's dimensions, as a class's
parameter shapes are (advisor.model.param_formula). So, where transformers is available
(scripts/precompute_memory_scaling.py), each shipped formula at the planner's shape is fitted again with each size
field of the model's parameter formula doubled (or halved), one at a time: every coefficient of every malloc, every
weight and the cache must change by an exact power of 2, with the same op sequence, SDPA kernels and region, or the
field stays fixed. The scaled formula is then compared with a fit at every free field tripled, coefficient for
coefficient, and dropped unless equal.

A config is answered when every other key equals the base's and the SDPA kernel's gates read what they read at the
base (advisor.estimate.sdpa: the head dimension, whether heads are grouped, the hidden size's alignment); the layer
count is free where the formula extrapolates over a repeating block. The answer is the scaled formula's replay,
byte for byte what the simulator gives the base's relatives at the fitted points.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cache
from typing import Any

from advisor.estimate.trace_formula import MONOMIALS, Formula, Refused, _Run, applies
from advisor.knowledge.memory_tables import memory_scaling, memory_scaling_runs

__all__ = ["SCALES", "applicable", "derive", "lookup", "scaled"]

SCALES = (Fraction(2), Fraction(1, 2))  # a field is doubled, or halved where doubling changes the kernel
EXPONENTS = range(-2, 4)  # hidden_size^2 (a square projection), 1 / heads (the head dimension), experts x ...
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")  # the config dict's names (DistilBERT's last)
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
_HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads", "n_heads", "encoder_attention_heads")
_KV_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
ALIGN = 64  # the hidden size's residue: offsets of fused q/k/v views, which the memory-efficient gate checks


def _first(config: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((config[k] for k in keys if isinstance(config.get(k), int) and not isinstance(config.get(k), bool)),
                None)


def kernel_inputs(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the SDPA gates read of a config, as far as its keys say: head dimension, grouped heads, alignment."""
    hidden, heads, kv = _first(config, _HIDDEN_KEYS), _first(config, _HEAD_KEYS), _first(config, _KV_KEYS)
    head_dim = config.get("head_dim")
    if not isinstance(head_dim, int) and isinstance(hidden, int) and isinstance(heads, int) and heads:
        head_dim = (hidden // heads, hidden % heads)
    return (head_dim, None if kv is None or heads is None else kv == heads,
            None if hidden is None else hidden % ALIGN)


# --- the formula's numbers, per malloc (the stored table dedupes equal sizes, which scaling can part)

def _expanded(run: _Run) -> tuple[list[int], list[list[Fraction]]]:
    """(events with every malloc as 0, each malloc's coefficients in order)."""
    pattern, sizes = [], []
    for event in run.events:
        index, kind = divmod(event, 2)
        pattern.append(event if kind else 0)
        if not kind:
            sizes.append([Fraction(c) for c in run.sizes[index]])
    return pattern, sizes


def _numbers(run: _Run) -> list[Fraction]:
    """Every number of a run that scales: weights, each malloc's coefficients, the cache's."""
    sizes = _expanded(run)[1]
    return [*(Fraction(w) for w in run.weights), *(c for s in sizes for c in s), *(Fraction(c) for c in run.kv)]


def _shape(formula: Formula) -> list[Any]:
    """What must not change between the base and a scaled fit: the op sequence, phases, kernels, region, and
    the layer count the runs extrapolate to (a field that moves it is the layer field, or fixed)."""
    return [formula.region.model_dump(), formula.generative, formula.device, formula.layers,
            [[_expanded(r)[0], r.prefill, r.reset, len(r.weights), len(r.kv), r.used, r.layers] for r in formula.runs]]


def _exponent(base: Fraction, other: Fraction, scale: Fraction) -> int | None:
    if base == 0:
        return 0 if other == 0 else None
    return next((e for e in EXPONENTS if base * scale**e == other), None)


def exponents_of(base: Formula, other: Formula, scale: Fraction) -> list[list[int]] | None:
    """Per run, each number's exponent in the field that `other` was fitted with scaled by `scale`; None where a
    number does not scale by a power of it or the trace's shape differs."""
    if _shape(base) != _shape(other):
        return None
    out = []
    for a, b in zip(base.runs, other.runs):
        found = [_exponent(x, y, scale) for x, y in zip(_numbers(a), _numbers(b))]
        if any(e is None for e in found):
            return None
        out.append([int(e or 0) for e in found])
    return out


def _factor(text: str, ratios: Mapping[str, Fraction]) -> Fraction:
    """The product of ratio ** exponent over "field=e,field=e"."""
    out = Fraction(1)
    for part in text.split(","):
        field, _, e = part.partition("=")
        out *= ratios[field] ** int(e)
    return out


def scaled(base: Formula, exps: Sequence[Mapping[int, str]], ratios: Mapping[str, Fraction],
           layers: int | None = None) -> Formula | None:
    """The base formula with its numbers scaled: `exps` per run maps a number's index (in `_numbers`' order) to
    its exponents ("field=e,..."); a number not in it does not scale. None where a weight comes out fractional."""
    factors: dict[str, Fraction] = {}

    def times(value: str, index: int, sparse: Mapping[int, str]) -> str:
        text = sparse.get(index)
        if text is None or value == "0":
            return value
        factor = factors.get(text)
        if factor is None:
            factor = factors[text] = _factor(text, ratios)
        return str(Fraction(value) * factor)

    width = len(MONOMIALS)
    runs = []
    for run, sparse in zip(base.runs, exps):
        weights = [Fraction(times(str(w), i, sparse)) for i, w in enumerate(run.weights)]
        if any(w.denominator != 1 or w < 0 for w in weights):
            return None
        table: dict[tuple[str, ...], int] = {}
        events, offset = [], len(weights)
        for event in run.events:
            if event % 2:
                events.append(event)
                continue
            size = tuple(times(c, offset + j, sparse) for j, c in enumerate(run.sizes[event // 2]))
            events.append(2 * table.setdefault(size, len(table)))
            offset += width
        kv = [times(c, offset + j, sparse) for j, c in enumerate(run.kv)]
        runs.append(run.model_copy(update={"weights": [int(w) for w in weights], "sizes": [list(k) for k in table],
                                           "events": events, "kv": kv}))
    return base.model_copy(update={"runs": runs, "layers": base.layers if layers is None else layers})


# --- deriving (needs torch and transformers: scripts/precompute_memory_scaling.py)

def _ratios(free: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Fraction]:
    return {f: Fraction(config[f]) / Fraction(v) for f, v in free.items()}


def derive(config: dict[str, Any], base: Formula, fit: Any, candidates: Sequence[str], *,
           layer_field: str | None) -> dict[str, Any] | None:
    """The scaling of `base` (fitted at `config`) in `candidates` (integer fields); `fit(config)` refits at another
    config (raises Refused). Returns the stored entry, or None where no field scales or the check fails."""
    numbers = [len(_numbers(r)) for r in base.runs]
    per_field: dict[str, list[list[int]]] = {}
    for field in candidates:
        value = config.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or field == layer_field:
            continue
        for scale in SCALES:
            if (value * scale).denominator != 1 or value * scale < 1:
                continue
            try:
                other = fit({**config, field: int(value * scale)})
            except Exception:  # noqa: BLE001 - a class that refuses this size, or no exact fit: try the other way
                continue
            found = exponents_of(base, other, scale)
            if found is not None:
                per_field[field] = found
                break
    if not per_field:
        return None
    free = {f: config[f] for f in per_field}
    exps = [{i: text for i in range(width)
             if (text := ",".join(f"{f}={per_field[f][r][i]}" for f in sorted(per_field) if per_field[f][r][i]))}
            for r, width in enumerate(numbers)]
    check = {**config, **{f: v * 3 for f, v in free.items()}}
    try:
        truth = fit(check)
    except Exception:  # noqa: BLE001 - no fit at the check point: nothing proved, nothing stored
        return None
    predicted = scaled(base, exps, _ratios(free, check))
    if predicted is None or _shape(predicted) != _shape(truth) or any(
            _numbers(a) != _numbers(b) for a, b in zip(predicted.runs, truth.runs)):
        return None
    period = (base.runs[0].layers or 0) // 2 if len(base.runs) == 2 and layer_field else None
    return {"free": free, "layer_field": layer_field if period else None, "period": period,
            "exponents": [{"n": n, "x": {str(i): text for i, text in run.items()}} for n, run in zip(numbers, exps)]}


# --- answering (no torch)

def _sparse(run: Mapping[str, Any]) -> dict[int, str]:
    """A stored exponent run ({"n": numbers, "x": {index: "field=e,..."}}) as `scaled` reads it."""
    return {int(i): str(text) for i, text in run["x"].items()}


def applicable(entry: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Fraction] | None:
    """The ratios of `config`'s free fields to the base's, where `config` is a relative the entry answers."""
    from advisor.model.param_formula import IGNORED

    ignored = IGNORED - {"quantization_config"}  # a pre-quantized checkpoint is simulated, not scaled
    base = entry["config"]
    free, layer_field = entry["free"], entry.get("layer_field")
    keys = {k for k in config if k not in ignored}
    if keys != {k for k in base if k not in ignored}:
        return None
    for key in keys:
        if key in free:
            value = config[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return None
        elif key == layer_field:
            n, period = config[key], int(entry["period"])
            if not isinstance(n, int) or isinstance(n, bool) or n <= 3 * period or n % period:
                return None
        elif config[key] != base[key]:
            return None
    if kernel_inputs(config) != kernel_inputs(base):
        return None
    return _ratios(free, config)


@cache
def _index(release: str) -> dict[str, list[dict[str, Any]]]:
    """The release's entries by their inputs (the formula key less the config), for one dict lookup per ask."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in memory_scaling().get("releases", {}).get(release, []):
        if isinstance(entry, dict) and isinstance(entry.get("inputs"), dict):
            out.setdefault(json.dumps(entry["inputs"], sort_keys=True), []).append(entry)
    return out


def lookup(key: Mapping[str, Any], stamp: str, release: str | None, base_formula: Any, *, batch: int, prompt: int,
           seq_len: int) -> Formula | None:
    """The formula of this relative of a shipped model whose region holds this shape, or None.
    `base_formula(digest, region)` gives the shipped formula an entry scales."""
    data = memory_scaling()
    if data.get("simulator") != stamp or release is None:
        return None
    config = key["config"]
    inputs = json.dumps({k: v for k, v in key.items() if k != "config"}, sort_keys=True)
    for entry in _index(release).get(inputs, []):
        try:
            ratios = applicable(entry, config)
            if ratios is None:
                continue
            base = base_formula(entry["base"], entry["region"])
            if base is None:
                continue
            layer_field = entry.get("layer_field")
            pool = memory_scaling_runs()
            if pool.get("simulator") != stamp:
                return None
            formula = scaled(base, [_sparse(pool["runs"][name]) for name in entry["exponents"]], ratios,
                             layers=config[layer_field] if layer_field else None)
            if formula is not None and applies(formula, config, batch, prompt, seq_len):
                return formula
        except (KeyError, TypeError, ValueError, Refused, IndexError, ZeroDivisionError, AttributeError):
            continue  # a malformed entry or a size that comes out fractional: not answered
    return None
