"""The simulated figures for a planner candidate, or None where simulation cannot run (no torch, or the class
fails on meta tensors), so advisor.memory falls back to its closed form.

Results are kept in the analysis cache, keyed by every input and by the simulator's own source (issues 13, 14).
A plan whose model needed no import of transformers (a shipped model, a config seen before) does not import it
just to simulate: it uses a cached simulation, an exact formula on the simulator's trace (shipped in data/, or
fitted at the config's first simulation: advisor.estimate.formula_store, issue 27), a simulation where the formula
was refused, or else the closed form, labelled `estimated`, unless simulation is asked for (`always_simulate()`,
the CLI's --simulate). A new config imports transformers anyway to count its
parameters (`ModelSpec.analysed_now`), so it is simulated. The choice depends on those inputs and the cache only
(`may_simulate`), never on `sys.modules`. Which candidates are simulated at all is `advisor.estimate.selection`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.estimate.simulate import SimResult
    from advisor.facts import GpuInfo
    from advisor.model import ModelSpec

__all__ = ["always_simulate", "may_simulate", "simulated"]

_log = logging.getLogger(__name__)
_FORCED: contextvars.ContextVar[bool] = contextvars.ContextVar("advisor_always_simulate", default=False)


@contextlib.contextmanager
def always_simulate() -> Iterator[None]:
    """Simulate even where that means importing torch and transformers (the CLI's --simulate)."""
    token = _FORCED.set(True)
    try:
        yield
    finally:
        _FORCED.reset(token)


# the modules that decide no simulated figure: their edits keep cached answers and the shipped formulas valid
_NOT_STAMPED = ("__init__.py", "adapter.py", "formula_store.py", "selection.py")


@cache
def _simulator_stamp() -> str:
    """A hash of the simulator's sources (and the formula fit's): an edited simulator never serves its old
    answers."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name not in _NOT_STAMPED:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def may_simulate(model: ModelSpec) -> bool:
    """Whether a simulation missing from the cache (and from the formulas) is run: with --simulate, where
    describing the model counted it on the meta device (transformers is then imported anyway), and for any model
    not shipped (a config seen before, at a shape no formula of it holds: issue 27, exact over fast). A shipped
    model keeps the fast path: its formulas are in data/, else the closed form. Explicit inputs only, never what
    the process happens to have imported, so one command gives one answer whatever ran before it."""
    return _FORCED.get() or model.analysed_now or model.source != "shipped"


def simulated(model: ModelSpec, *, dtype: str, quantization: str, attn: str, batch: int, prompt_len: int,
              seq_len: int, gpus: tuple[GpuInfo, ...] = (), sdpa_backends: tuple[str, ...] | None = None,
              padded: bool = False, run: bool = True) -> SimResult | None:
    """Simulate `model` for one candidate on the first of `gpus` (or the CPU). `run=False`: only an answer that
    needs no simulation now (the cache, an exact formula)."""
    if not model.config or model.trust_remote_code:
        return None
    capability: tuple[int, int] = (0, 0)
    if gpus:
        cc = gpus[0].compute_capability
        major, minor = getattr(cc, "major", None), getattr(cc, "minor", None)
        capability = (int(major), int(minor)) if major is not None and minor is not None else (8, 0)
    inputs = dict(
        architecture=model.architecture, dtype=dtype, attn=attn, quantization=quantization, batch=batch,
        prompt_len=prompt_len, seq_len=seq_len, padded=padded, device="cuda" if gpus else "cpu", capability=capability,
        sdpa_backends=tuple(sdpa_backends) if sdpa_backends is not None else ("flash", "efficient", "math"),
    )
    from advisor import analysis_cache

    key = {"config": model.config, **inputs}
    tf = analysis_cache.transformers_version()
    hit = analysis_cache.get("memory-sim", key, transformers=tf, extra=_simulator_stamp())
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
    found = formula_store.lookup(fkey, _simulator_stamp(), **shape)
    if found is not None:
        return found
    if not run or not may_simulate(model):
        return None  # the fast path stays free of torch and transformers (issue 14): closed form, labelled
    try:
        from advisor.estimate.simulate import simulate

        result = simulate(dict(model.config), **inputs)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a class that cannot run on meta tensors keeps the closed form
        _log.debug("simulation of %s failed: %s: %s", model.name, type(exc).__name__, exc)
        return None
    analysis_cache.put("memory-sim", key, result.model_dump(mode="json"), transformers=tf, extra=_simulator_stamp())
    if analysis_cache.enabled() and not formula_store.refused(fkey, _simulator_stamp()):
        generative = bool(model.architecture and model.architecture.endswith(_GEN_SUFFIXES))
        formula_store.record(fkey, _simulator_stamp(), architecture=model.architecture, generative=generative,
                             **shape)
    return result
