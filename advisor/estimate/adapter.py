"""The simulated figures for a planner candidate, or None where simulation cannot run (no torch, or the class
fails on meta tensors), so advisor.estimate.memory falls back to its closed form.

Results are kept in the analysis cache, keyed by every input and by the simulator's own source (issues 13, 14).
A plan whose model needed no import of transformers (a shipped model, a config seen before) does not import it
just to simulate: it uses a cached simulation, an exact formula on the simulator's trace (shipped in data/, or
fitted after a config's first simulation: advisor.estimate.formula_store, issue 27), a simulation where no formula
holds, or else the closed form, labelled `estimated`, unless simulation is asked for (`always_simulate=True`,
passed down from the request's `simulate`, the CLI's --simulate). A new config imports transformers anyway to count
its parameters (`ModelSpec.analysed_now`), so it is simulated. The choice depends on those inputs and the cache
only (`may_simulate`), never on `sys.modules`. Which candidates are simulated at all is `advisor.estimate.selection`.
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import tokenize
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.knowledge.installed import installed_version

if TYPE_CHECKING:
    from advisor.estimate.simulate import SimResult
    from advisor.facts import GpuInfo
    from advisor.model.spec import ModelSpec

__all__ = ["may_simulate", "simulated"]

_log = logging.getLogger(__name__)


# the modules that decide a simulated figure: their code, less docstrings, is the stamp (a formula's own layout
# is versioned by trace_formula.FORMAT, and every formula was proved byte-equal to this simulator)
_STAMPED = ("allocator.py", "bnb.py", "sdpa.py", "simulate.py", "tracker.py")


def _code_text(source: bytes) -> bytes:
    """The source less docstrings, comments and blank lines: what decides the simulator's answers. Cut from the
    text by the parser's and tokenizer's positions, never hashed as a syntax tree: `ast.dump` differs between
    Python versions (3.12 added fields), and the stamp must be the same on 3.11 and 3.12 (on the GPU machine's
    Python 3.12 every shipped formula read as stale, so a shipped model imported torch to simulate)."""
    lines = source.splitlines(keepends=True)
    cuts: list[tuple[int, int, int, int]] = []  # (first line, byte column, last line, byte column), 1-based lines
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            doc = body[0]
            cuts.append((doc.lineno, doc.col_offset, doc.end_lineno or doc.lineno, doc.end_col_offset or 0))
    for token in tokenize.tokenize(io.BytesIO(source).readline):
        if token.type == tokenize.COMMENT:  # to the end of its line; the tokenizer counts characters, not bytes
            row, col = token.start
            start = len(token.line[:col].encode("utf-8"))
            cuts.append((row, start, row, len(lines[row - 1].rstrip(b"\r\n"))))
    for first, start, last, end in sorted(cuts, reverse=True):
        head, tail = lines[first - 1][:start], lines[last - 1][end:]
        lines[first - 1:last] = [head + tail]
    kept = (line.rstrip() for line in b"".join(lines).splitlines())
    return b"\n".join(line for line in kept if line.strip())


def _code_stamp(folder: Path) -> str:
    """The simulator's code (`_code_text` of each module) hashed: ~0.1 s, so `_simulator_stamp` keeps the
    result by the files' sizes and times."""
    digest = hashlib.sha256()
    for name in _STAMPED:
        digest.update(name.encode() + b"\0" + _code_text((folder / name).read_bytes()) + b"\0")
    return digest.hexdigest()[:16]


@cache
def _simulator_stamp(cache: bool = True) -> str:
    """A hash of the simulator's code: an edited simulator never serves its old answers or formulas; an edit of
    its prose (docstrings, comments) keeps them. Remembered by the files' sizes and times (an edit changes
    them), since every warm `recommend` needs the stamp (issue 27: warm paths at most 0.3x of collect_env);
    `cache=False` (--no-cache) computes it without reading or writing the cache."""
    from advisor.io import analysis_cache

    folder = Path(__file__).parent
    try:
        stats = [(name, (folder / name).stat()) for name in _STAMPED]
        marks = [[name, st.st_size, st.st_mtime_ns] for name, st in stats]
    except OSError:
        return _code_stamp(folder)
    key = {"folder": str(folder), "files": marks}
    hit = analysis_cache.get("simulator-stamp", key, transformers=None, use=cache)
    if isinstance(hit, str) and len(hit) == 16:
        return hit
    stamp = _code_stamp(folder)
    analysis_cache.put("simulator-stamp", key, stamp, transformers=None, use=cache)
    return stamp


def may_simulate(model: ModelSpec, *, always_simulate: bool = False, cache: bool = True) -> bool:
    """Whether a simulation missing from the cache (and from the formulas) is run: with --simulate, where
    describing the model counted it on the meta device (transformers is then imported anyway), and for any model
    not shipped (a config seen before, at a shape no formula of it holds: issue 27, exact over fast). A shipped
    model keeps the fast path, its formulas in data/ else the closed form, where those formulas were made by
    this simulator; where not (data/memory_formulas.json is stale), it simulates. Explicit
    inputs only, never what the process happens to have imported, so one command gives one answer whatever ran
    before it."""
    if always_simulate or model.analysed_now or model.source != "shipped":
        return True
    from advisor.estimate import formula_store

    return not formula_store.shipped_current(_simulator_stamp(cache))


def simulated(model: ModelSpec, *, dtype: str, quantization: str, attn: str, batch: int, prompt_len: int,
              seq_len: int, gpus: tuple[GpuInfo, ...] = (), sdpa_backends: tuple[str, ...] | None = None,
              padded: bool = False, always_simulate: bool = False, cache: bool = True, run: bool = True
              ) -> SimResult | None:
    """Simulate `model` for one candidate on the first of `gpus` (or the CPU); `cache=False`: --no-cache;
    `run=False`: only an answer that needs no simulation now (the cache, an exact formula)."""
    if not model.config or model.trust_remote_code:
        return None
    capability: tuple[int, int] = (0, 0)
    if gpus:
        cc = gpus[0].compute_capability
        major, minor = getattr(cc, "major", None), getattr(cc, "minor", None)
        capability = (int(major), int(minor)) if major is not None and minor is not None else (8, 0)
    from advisor.estimate.simulate import simulation_target

    # the target as the simulator tells targets apart (one attention class for flash-attn and flex, one capability
    # class between its thresholds, no capability on the CPU): candidates it simulates alike share one key
    target = simulation_target(attn=attn, device="cuda" if gpus else "cpu", capability=capability,
                               sdpa_backends=("flash", "efficient", "math") if sdpa_backends is None else sdpa_backends)
    inputs = dict(architecture=model.architecture, dtype=dtype, quantization=quantization, batch=batch,
                  prompt_len=prompt_len, seq_len=seq_len, padded=padded, **target)
    from advisor.io import analysis_cache

    key = {"config": model.config, **inputs}
    tf = installed_version()
    hit = analysis_cache.get("memory-sim", key, transformers=tf, extra=_simulator_stamp(cache), use=cache)
    if hit is not None:
        from advisor.estimate.simulate import SimResult

        try:
            return SimResult.model_validate(hit)
        except ValueError:
            pass  # an entry of another shape: simulate again and overwrite it
    from advisor.estimate import formula_store
    from advisor.estimate.simulate import _GEN_SUFFIXES

    # issue 27: a formula proved exact on the simulator's trace (shipped, or fitted at this config's first
    # simulation) answers any shape of its region without torch
    fkey = formula_store.formula_key(model.config, inputs)
    shape = {"batch": batch, "prompt": prompt_len, "seq_len": max(seq_len, prompt_len)}
    found = formula_store.lookup(fkey, _simulator_stamp(cache), use_cache=cache, **shape)
    if found is not None:
        return found
    if model.source != "shipped":  # a shipped model's own formulas were just asked; a relative's are scaled
        found = formula_store.relative(fkey, _simulator_stamp(cache), keep=cache and analysis_cache.enabled(),
                                       **shape)
        if found is not None:
            return found
    if not run or not may_simulate(model, always_simulate=always_simulate, cache=cache):
        return None  # the fast path stays free of torch and transformers (issue 14): closed form, labelled
    try:
        from advisor.estimate.simulate import simulate

        result = simulate(dict(model.config), **inputs)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a class that cannot run on meta tensors keeps the closed form
        _log.debug("simulation of %s failed: %s: %s", model.name, type(exc).__name__, exc)
        return None
    analysis_cache.put("memory-sim", key, result.model_dump(mode="json"), transformers=tf, extra=_simulator_stamp(cache),
                       use=cache)
    if cache and analysis_cache.enabled() and not formula_store.refused(fkey, _simulator_stamp(cache)):
        generative = bool(model.architecture and model.architecture.endswith(_GEN_SUFFIXES))
        formula_store.record(fkey, _simulator_stamp(cache), architecture=model.architecture, generative=generative,
                             **shape)
    return result
