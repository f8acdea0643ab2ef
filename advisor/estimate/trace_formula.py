"""The simulator's answer at any shape without running it: a formula on the allocation trace (issue 27).

A polynomial fitted to the final peak is not exact: the caching allocator rounds every block to 512 B, carves
2 MiB and 20 MiB segments and picks the best fit, so the peak is a step function of the tensor sizes. What is
smooth is the trace underneath it. For a given model and configuration, a forward at another batch or length
runs the same ops in the same order: the same mallocs and frees, only of other sizes, and each size is a product
of the shape's dimensions, a polynomial of low degree in batch b, prompt p and final length s (b*p*hidden,
b*heads*p*p scores, b*s decode scores, ...). So the trace is recorded at a few shapes, each malloc's size is solved
for exactly (rational coefficients) over the monomials of `MONOMIALS`, and at a new shape the sizes are evaluated
and the allocator (advisor.estimate.allocator) replayed: the same arithmetic the simulator does, byte for byte.

Exactness is proved, never assumed: the formula is kept only when the trace's structure is the same at every
recorded shape and it reproduces every event and the result at held-out shapes byte-equal; otherwise it is
refused (`Refused`), and the caller simulates. Known refusals: Mamba's and Jamba's slow paths loop over the tokens
(the number of ops grows with the prompt), and Mamba-2's chunked scan pads to a multiple of its chunk.

Shapes where the code branches on a length are kept apart: a config's window and chunk sizes split the lengths
into regions (a sliding window keeps min(s - 1, window - 1) tokens); a formula holds in the region of the shapes
it was fitted at, and lengths within `EDGE` of a threshold, or exactly 1 new token, get no formula. The planner's
own shape, a prefill of the whole length (s == p: what `recommend` and `check` size), is a region of its own,
the diagonal, fitted in b and p alone.
Replaying needs neither torch nor transformers: this module imports them only to record.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.estimate.allocator import CachingAllocator

__all__ = ["FORMAT", "Formula", "Refused", "evaluate", "fit", "region", "thresholds"]

FORMAT = "trace-formula/1"
EDGE = 2
# exponents of (b, p, s): b at most 1 (every tensor is per sequence), lengths to degree 2 (attention scores)
MONOMIALS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 2, 0), (0, 1, 1), (0, 0, 2),
    (1, 1, 0), (1, 0, 1), (1, 2, 0), (1, 1, 1), (1, 0, 2))
_THRESHOLD_KEYS = ("sliding_window", "window_size", "attention_window", "chunk_size", "attention_chunk_size",
                   "mamba_chunk_size", "local_window", "max_position_embeddings", "n_positions")
MODULUS = 64  # kernels pad to multiples of 8 or 32 (SDPA's masks, the log-sum-exp): a second fit locks residues
_CHUNK_KEYS = ("chunk_size", "mamba_chunk_size", "attention_chunk_size")  # scans pad to a multiple of these


class Refused(Exception):
    """No exact formula: the reason says which check failed."""


class _Run(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: int | None
    weights: list[int]  # bytes of each tensor loaded, in order
    sizes: list[list[str]]  # distinct size formulas: coefficients of MONOMIALS, as exact fractions
    events: list[int]  # 2k: malloc of sizes[k]; 2j + 1: free of the j-th malloc
    prefill: int | None  # events before the prefill's peak is read (None: an encoder's single forward)
    reset: int | None  # events before the decode step's peak starts (the tracker's reset_peak)
    kv: list[str]  # the cache at its final length, as a formula
    used: dict[str, int]  # SDPA kernels run (the same at every shape, or no formula)


class Region(BaseModel):
    """Where a formula holds: each length's class against each threshold (below, above, or an exact offset
    within EDGE of it), and for a residue-locked fit the residues of p and s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: list[list[int]]  # [threshold, class of p, class of s - 1]; class 0 below, 1 above, 2 + offset + EDGE at
    single: bool = False  # batch 1, its own branch in places (padding masks): fitted apart from batch >= 2
    diagonal: bool = False  # s == p: the prefill covers the whole length (the planner's shape)
    modulus: int = 0
    residues: list[int] = []


class Formula(BaseModel):
    """Everything `evaluate` needs: per layer count run, the trace with its sizes as formulas."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    layers: int
    runs: list[_Run]
    device: str
    capability: list[int]
    region: Region
    generative: bool


class _Recorder:
    """An allocator that logs the events it serves to the allocator it wraps (or counts raw bytes: a CPU target)."""

    def __init__(self, inner: CachingAllocator | None) -> None:
        self.inner = inner
        self.allocated = 0
        self.log: list[tuple[str, int]] = []
        self._mallocs = 0
        self._ordinal: dict[int, int] = {}
        self._raw: dict[int, int] = {}

    def malloc(self, nbytes: int) -> int:
        self.log.append(("m", nbytes))
        if self.inner is not None:
            handle = self.inner.malloc(nbytes)
            self.allocated = self.inner.allocated
        else:
            handle = self._mallocs
            self._raw[handle] = nbytes
            self.allocated += nbytes
        self._ordinal[handle] = self._mallocs
        self._mallocs += 1
        return handle

    def free(self, handle: int) -> None:
        self.log.append(("f", self._ordinal.pop(handle)))
        if self.inner is not None:
            self.inner.free(handle)
            self.allocated = self.inner.allocated
        else:
            self.allocated -= self._raw.pop(handle)

    def mark(self, phase: str) -> None:
        self.log.append((phase, 0))


def _ints(config: Mapping[str, Any], keys: tuple[str, ...]) -> list[int]:
    found: set[int] = set()
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in keys and isinstance(value, int) and not isinstance(value, bool) and value > 2:
                    found.add(value)
                elif isinstance(value, Mapping):
                    stack.append(value)
    return sorted(found)


def thresholds(config: Mapping[str, Any]) -> list[int]:
    """Lengths where the model's code may branch: its windows and chunks (nested configs too)."""
    return _ints(config, _THRESHOLD_KEYS)


def _class(length: int, t: int) -> int:
    return 0 if length < t - EDGE else 1 if length > t + EDGE else 2 + length - t + EDGE


def region(config: Mapping[str, Any], batch: int, prompt: int, seq_len: int, generative: bool, modulus: int = 0
           ) -> Region | None:
    """The region of this shape, or None where no formula is made: exactly 1 new token (another branch of
    generate). No new token (s == p) is the diagonal: s moves with p."""
    diagonal = generative and seq_len == prompt
    if generative and not diagonal and seq_len - prompt < 2:
        return None
    sequence = generative and not diagonal
    classes = [[t, _class(prompt, t), _class(seq_len - 1, t) if sequence else 0] for t in thresholds(config)]
    residues = [prompt % modulus, seq_len % modulus] if modulus else []
    return Region(classes=classes, modulus=modulus, residues=residues, single=batch == 1, diagonal=diagonal)


def _values(where: Region, column: int, lo: int) -> tuple[list[int], int] | None:
    """Five lengths from `lo` up in `where`'s classes for this column (1: p, 2: s - 1) and a far one (no period, of
    a chunk or an alignment, hides from it); ([v], v) where the region fixes the length."""
    class_low, high = 1, 1 << 40
    for row in where.classes:
        t, c = row[0], row[column]
        if c >= 2:
            return [t + c - 2 - EDGE], t + c - 2 - EDGE
        if c == 0:
            high = min(high, t - EDGE - 1)
        else:
            class_low = max(class_low, t + EDGE + 1)
    step = where.modulus or 1
    residue = (where.residues[column - 1] - (column - 1)) if where.modulus else 0

    def align(x: int) -> int:
        return x + (residue - x) % step

    if where.modulus and align(class_low) <= high < align(class_low) + step:
        return [align(class_low)], align(class_low)  # the one length of this residue in its class
    value = align(max(lo, class_low) + 2)
    out = [value + g * step for g in ((0, 2, 4, 5, 8) if not where.modulus else (0, 1, 2, 3, 5))]
    if out[-1] > high:
        return None
    far = min(high, max(out[-1], 2 * max([0, where.modulus, *(r[0] for r in where.classes)])) + 997 * column)
    far -= (far - value) % step
    return out, max(far, out[-1])


def _points(where: Region, generative: bool) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(fit shapes, held-out shapes) inside `where`: two batches (or batch 1) times a unisolvent set of lengths,
    held out at other lengths and at a far one."""
    fit_b, held_b = ((1,), (1, 1, 1)) if where.single else ((2, 3), (4, 7, 5))
    got = _values(where, 1, 1)
    if got is None:
        raise Refused("the region leaves no room for the fit")
    ps, p_far = got
    ss, s_far = ps, p_far
    if generative:
        got = _values(where, 2, max(ps) + 1)
        if got is None:
            raise Refused("the region leaves no room for the fit")
        ss, s_far = [x + 1 for x in got[0]], got[1] + 1  # the values were of s - 1
        if min(ss) < max(ps) + 2:
            raise Refused("the region leaves no room for 2 new tokens")
        if s_far < p_far + 2 and len(ps) > 1:  # both far lengths in a bounded class: p as far as s allows
            p_far = s_far - 2 - (s_far - 2 - ps[0]) % (where.modulus or 1)
    if len(ps) > 1 and len(ss) > 1 and generative:
        grid = [(ps[i], ss[j]) for i, j in ((0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (0, 2))]  # unisolvent
        held = [(ps[3], ss[3]), (ps[4], ss[4]), (p_far, s_far)]
    elif len(ps) > 1:
        grid = [(p, ss[0] if generative else p) for p in ps[:3]]
        held = [(p, ss[0] if generative else p) for p in (ps[3], ps[4], p_far)]
    elif len(ss) > 1:
        grid, held = [(ps[0], x) for x in ss[:3]], [(ps[0], x) for x in (ss[3], ss[4], s_far)]
    else:
        grid, held = [(ps[0], ss[0])], [(ps[0], ss[0])]
    return [(b, p, s) for b in fit_b for p, s in grid], [(b, p, s) for b, (p, s) in zip(held_b, held)]


def _monomials(b: int, p: int, s: int) -> list[int]:
    return [b**i * p**j * s**k for i, j, k in MONOMIALS]


def _solver(shapes: Sequence[tuple[int, int, int]], generative: bool) -> tuple[list[int], list[list[Fraction]]]:
    """The monomials that vary over `shapes` and the inverse of their matrix, for exact solves."""
    free_b = len({x[0] for x in shapes}) > 1
    free_p = len({x[1] for x in shapes}) > 1
    free_s = generative and len({x[2] for x in shapes}) > 1
    used = [n for n, (i, j, k) in enumerate(MONOMIALS) if (free_b or i == 0) and (free_p or j == 0) and (free_s or k == 0)]
    rows = [[Fraction(_monomials(*x)[i]) for i in used] for x in shapes]
    n = len(used)
    if len(rows) != n:
        raise Refused("fit shapes do not match the monomials")
    aug = [row + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if aug[r][col] != 0), None)
        if pivot is None:
            raise Refused("fit shapes are not unisolvent")
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [a - f * c for a, c in zip(aug[r], aug[col])]
    return used, [row[n:] for row in aug]


def _solve(values: Sequence[int], used: list[int], inverse: list[list[Fraction]]) -> list[str]:
    coef = [sum((inverse[i][j] * values[j] for j in range(len(values))), Fraction(0)) for i in range(len(used))]
    full = [Fraction(0)] * len(MONOMIALS)
    for i, c in zip(used, coef):
        full[i] = c
    return [str(c) for c in full]


def _value(coef: Sequence[str], b: int, p: int, s: int) -> int:
    total = sum((Fraction(c) * m for c, m in zip(coef, _monomials(b, p, s)) if c != "0"), Fraction(0))
    if total.denominator != 1 or total < 0:
        raise Refused(f"a size evaluates to {total} at b={b}, p={p}, s={s}")
    return int(total)


def _structure(log: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[int]]:
    """(the events with sizes blanked, the malloc sizes in order)."""
    return [(k, 0 if k == "m" else v) for k, v in log], [v for k, v in log if k == "m"]


def _record(config: dict[str, Any], architecture: str | None, layers: int | None, shape: tuple[int, int, int], *,
            args: dict[str, Any], target: dict[str, Any]) -> tuple[list[tuple[str, int]], Any]:
    """One run's events (loading, then the tracked forward) and `_simulate_layers`' answer."""
    from advisor.estimate import simulate as sim

    recorder = _Recorder(CachingAllocator() if target["device"] == "cuda" else None)
    b, p, s = shape
    result = sim._simulate_layers(config, architecture, layers, batch=b, prompt=p, seq_len=s, target=target,
                                  allocator=recorder, **args)
    return recorder.log, result


def fit(config: dict[str, Any], architecture: str | None, *, dtype: str, attn: str, quantization: str, padded: bool,
        device: str, capability: Sequence[int], sdpa_backends: Sequence[str], batch: int, prompt: int,
        seq_len: int, generative: bool) -> Formula:
    """Record the trace at the fit shapes of (prompt, seq_len)'s region, solve each size exactly, and keep the
    formula only if it reproduces the held-out shapes byte-equal; else raise Refused."""
    try:
        return _fit(config, architecture, dtype=dtype, attn=attn, quantization=quantization, padded=padded,
                    device=device, capability=capability, sdpa_backends=sdpa_backends, batch=batch, prompt=prompt,
                    seq_len=seq_len, generative=generative, modulus=0)
    except Refused:  # a kernel that pads to a multiple (masks, log-sum-exp, chunks): fit within residues
        modulus = math.lcm(MODULUS, *_ints(config, _CHUNK_KEYS))
        return _fit(config, architecture, dtype=dtype, attn=attn, quantization=quantization, padded=padded,
                    device=device, capability=capability, sdpa_backends=sdpa_backends, batch=batch, prompt=prompt,
                    seq_len=seq_len, generative=generative, modulus=modulus)


def _fit(config: dict[str, Any], architecture: str | None, *, dtype: str, attn: str, quantization: str,
         padded: bool, device: str, capability: Sequence[int], sdpa_backends: Sequence[str], batch: int,
         prompt: int, seq_len: int, generative: bool, modulus: int) -> Formula:
    import warnings

    from advisor.estimate import simulate as sim

    where = region(config, batch, prompt, seq_len, generative, modulus)
    if where is None:
        raise Refused("1 new token: another branch of generate()")
    free_s = generative and not where.diagonal  # on the diagonal s is p: the fit's shapes and monomials are p's
    fit_shapes, held_out = _points(where, free_s)
    query = (batch, prompt, seq_len if generative else prompt)
    if query not in fit_shapes and query not in held_out:
        held_out.append(query)  # the shape asked for is proved too
    norm = sim.simulation_target(attn=attn, device=device, capability=tuple(capability), sdpa_backends=sdpa_backends)
    attn, capability = norm["attn"], norm["capability"]
    target = {"device": device, "capability": capability, "usable": frozenset(norm["sdpa_backends"])}
    args = dict(dtype=dtype, attn=attn, quantization=quantization, padded=padded)
    n, layer_runs = sim.layer_plan(config)
    used_idx, inverse = _solver(fit_shapes, free_s)
    runs: list[_Run] = []
    held_parts: list[list[Any]] = [[] for _ in held_out]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layers in layer_runs:
            records = []
            for x in [*fit_shapes, *held_out]:  # the fit's small shapes first: a loop over tokens shows there
                records.append(sim._quiet(functools.partial(_record, args=args, target=target), config,
                                          architecture, layers, x))
                if len({json.dumps(_structure(log)[0]) for log, _ in records}) != 1:
                    raise Refused("the op sequence changes with the shape (a loop over tokens or chunks)")
            if len({json.dumps(r[1][4], sort_keys=True) for r in records}) != 1:
                raise Refused("the SDPA kernels change with the shape")
            for parts, (_, result) in zip(held_parts, records[len(fit_shapes):]):
                parts.append(result)
            log0, (*_, used, _ops) = records[0]
            loaded = log0.index(("loaded", 0))
            preload = [_structure(log[:loaded])[1] for log, _ in records]
            if any(x != preload[0] for x in preload):
                raise Refused("the weights change with the shape")
            weights = preload[0][:-1] if device == "cuda" else preload[0]  # the cuBLAS workspace comes last
            n_pre = len(preload[0])
            sizes_at = [_structure(log[loaded + 1:])[1] for log, _ in records]
            fitted = sizes_at[: len(fit_shapes)]
            formulas = [_solve(list(c), used_idx, inverse) for c in zip(*fitted)]
            kv = _solve([r[1][3] for r in records[: len(fit_shapes)]], used_idx, inverse)
            for (b, p, s), sizes, (_, result) in zip(held_out, sizes_at[len(fit_shapes):], records[len(fit_shapes):]):
                if [_value(f, b, p, s) for f in formulas] != sizes or _value(kv, b, p, s) != result[3]:
                    raise Refused(f"held-out shape b={b} p={p} s={s}: a size differs from its formula")
            table: dict[tuple[str, ...], int] = {}
            events: list[int] = []
            marks: dict[str, int | None] = {"prefill": None, "reset": None}
            m = 0
            for kind, value in log0[loaded + 1:]:
                if kind == "m":
                    events.append(2 * table.setdefault(tuple(formulas[m]), len(table)))
                    m += 1
                elif kind == "f":
                    events.append(2 * (value - n_pre) + 1)
                else:
                    marks[kind] = len(events)
            runs.append(_Run(layers=layers, weights=weights, sizes=[list(k) for k in table], events=events,
                             prefill=marks["prefill"], reset=marks["reset"], kv=kv, used=used))
    formula = Formula(layers=n, runs=runs, device=device, capability=list(capability), region=where,
                      generative=generative)
    for (b, p, s), parts in zip(held_out, held_parts):  # byte-equal to the simulator's result, or no formula
        direct = sim.combine(n, layer_runs, parts, target)
        got = evaluate(formula, b, p, s)
        if _figures(got) != _figures(direct):
            raise Refused(f"held-out shape b={b} p={p} s={s}: formula {_figures(got)} != simulated {_figures(direct)}")
    return formula


def _figures(result: Any) -> tuple[int, ...]:
    return (result.weights_bytes, result.prefill_peak_bytes, result.decode_peak_bytes, result.kv_cache_bytes,
            result.peak_bytes)


def _replay(run: _Run, device: str, capability: Sequence[int], b: int, p: int, s: int
            ) -> tuple[int, int, int, int, dict[str, int], int]:
    from advisor.estimate.simulate import cublas_workspace_bytes

    sizes = [_value(c, b, p, s) for c in run.sizes]
    cuda = device == "cuda"
    allocator = CachingAllocator() if cuda else None
    if allocator is not None:
        for w in run.weights:
            allocator.malloc(w)
        weights = allocator.allocated
        allocator.malloc(cublas_workspace_bytes(tuple(capability)))
    else:
        weights = sum(run.weights)
    handles: list[int] = []
    freed: set[int] = set()
    live = peak = 0
    pre = -1
    for i in range(len(run.events) + 1):
        if i == run.prefill:
            pre = peak
        if i == run.reset:
            peak = live
        if i == len(run.events):
            break
        index, kind = divmod(run.events[i], 2)
        if kind == 0:
            size = sizes[index]
            if allocator is not None:
                before = allocator.allocated
                handles.append(allocator.malloc(size))
                size = allocator.allocated - before
            else:
                handles.append(size)
            live += size
            peak = max(peak, live)
        else:
            if index in freed or index >= len(handles):
                raise Refused("a free of no live malloc")
            freed.add(index)
            if allocator is not None:
                before = allocator.allocated
                allocator.free(handles[index])
                live -= before - allocator.allocated
            else:
                live -= handles[index]
    dec = peak
    if run.prefill is None:  # an encoder: one forward, its peak is the prefill's
        pre, dec = peak, 0
    return weights, pre, dec, _value(run.kv, b, p, s), dict(run.used), len(run.events)


def evaluate(formula: Formula, batch: int, prompt: int, seq_len: int) -> Any:
    """The SimResult the simulator would give at this shape (`seconds` 0: no run)."""
    from advisor.estimate.simulate import combine

    target = {"device": formula.device, "capability": tuple(formula.capability)}
    parts = [_replay(run, formula.device, formula.capability, batch, prompt, seq_len) for run in formula.runs]
    return combine(formula.layers, tuple(r.layers for r in formula.runs), parts, target)


def applies(formula: Formula, config: Mapping[str, Any], batch: int, prompt: int, seq_len: int) -> bool:
    """Whether this shape lies in the region the formula was fitted and proved in."""
    return region(config, batch, prompt, seq_len, formula.generative, formula.region.modulus) == formula.region
