"""KERN rules: Hub kernels, which transformers 5.25 loads by default (advisor/rules/kernelization.py says how and why)."""

from __future__ import annotations

from collections.abc import Iterator

from advisor.candidate import Candidate
from advisor.findings import Finding, Severity
from advisor.rules.base import Context, rule
from advisor.rules.kernelization import HubKernelAdvice, hub_kernel_advice

__all__ = ["advice"]

_OFF = "pass use_kernels=False to from_pretrained (or set USE_HUB_KERNELS=0)"


def _requested(ctx: Context) -> bool | None:
    value = ctx.from_pretrained.get("use_kernels")
    return None if value is None else bool(value)


def _kernelize_on_cpu(kwargs: dict[str, object]) -> bool:
    """Whether given kwargs load the model on the CPU, where transformers kernelizes it (5.25 hub_kernels.py
    `kernelize`: the first device of device_map other than cpu/disk, else the model's device). Without device_map
    the weights load on the CPU; a later `.to("cuda")` does not kernelize again."""
    if not kwargs:
        return False  # no kwargs given (check --attn/--dtype): the candidate as the plan would emit it
    device_map = kwargs.get("device_map")
    if device_map is None:
        return True
    if isinstance(device_map, dict):
        return not ({str(v) for v in device_map.values()} - {"cpu", "disk"})
    return str(device_map) in ("cpu", "disk")


def advice(ctx: Context, c: Candidate | None) -> HubKernelAdvice:
    """The Hub-kernel advice for this candidate's placement, computed once per context and placement."""
    placement = c.placement if c is not None else ("gpu" if ctx.gpus else "cpu")
    if not ctx.planner and _kernelize_on_cpu(ctx.from_pretrained):
        placement = "cpu"
    requested = _requested(ctx)
    key = ("hub-kernels", placement, requested)
    found = ctx.memo.get(key)
    if not isinstance(found, HubKernelAdvice):
        found = hub_kernel_advice(ctx.env, ctx.model, placement, requested=requested, cache=ctx.cache)
        ctx.memo[key] = found
    return found


def _needs(a: HubKernelAdvice) -> str:
    return ", ".join(f"{n.repo} {n.ref}" for n in a.needed) or "the release's kernels for this device"


@rule("KERN001", "Hub kernels cannot load where the model loads", scope="candidate",
      fix=f"{_OFF}, or cache the kernels once with network (`python -c \"from kernels import install_kernel; "
          "install_kernel('<repo>', version=<N>)\"`) and load with HF_HUB_OFFLINE=1")
def kernels_unloadable(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """From transformers 5.25, `from_pretrained` kernelizes every model by default (`use_kernels=None` means
    True unless USE_HUB_KERNELS says no): RMSNorm, activations and RoPE come from Hub kernels. Offline, `kernels`
    finds `version=N` only through the cache's `refs/v<N>` and raises "Version N of 'repo' is not available in
    the local cache and Hugging Face Hub is in offline mode"; online, it checks the publisher on the Hub first and
    raises "could not verify publisher trust status" when the Hub does not answer; without a `kernels` release in
    transformers' window, 5.25 raises "Kernels are not available" on every device. kernelize falls back to torch
    only for FileNotFoundError, so each of these ends the load. The plan then emits `use_kernels=False` and says
    how to cache the kernels; `check` fails a configuration that would kernelize into one of these errors."""
    a = advice(ctx, c)
    if a.outcome not in ("package", "blocked", "blocked-presumed", "unknown"):
        return
    detected = {"package": a.package, "blocked": a.hub, "blocked-presumed": a.hub, "unknown": a.layers_source
                or a.mapping_source}[a.outcome]
    required = "a kernels release in transformers' window" if a.outcome == "package" else \
        f"{_needs(a)} cached with HF_HUB_OFFLINE=1, or the Hub reachable"
    fix = a.fix or kernels_unloadable.fix
    # the plan, or `check` without kwargs (--attn/--dtype: the candidate as the plan emits it), sets use_kernels
    if (ctx.planner or not ctx.from_pretrained) and a.emit is False:
        yield kernels_unloadable.finding(
            Severity.INFO,
            f"use_kernels=False in the plan: {a.reason}" + (f"; with the default the load raises {a.problem}"
                                                             if a.problem else ""),
            detected=detected, required=required, option="use_kernels",
            fix=(f"to use the Hub kernels, cache them once with network: {a.precache}" if a.precache else fix))
        return
    severity = Severity.WARN if a.outcome == "unknown" else Severity.FAIL
    given = "use_kernels=True" if a.requested else f"no use_kernels (transformers {a.release}'s default: on)"
    yield kernels_unloadable.finding(
        severity, f"{given}: {a.reason}" + (f"; from_pretrained raises {a.problem}" if a.problem else ""),
        detected=detected, required=required, option="use_kernels", fix=fix)


@rule("KERN002", "Hub kernels depend on the Hub's publisher check", scope="candidate",
      fix="set HF_HUB_OFFLINE=1 where the model loads once the kernels are cached, or pass use_kernels=False")
def kernels_trust_check(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Online (HF_HUB_OFFLINE unset), kernels 0.19.1 asks the Hub's organization API whether each kernel
    repository's publisher is trusted (`trustedKernelPublisher`) before resolving, downloading or even using a
    cached copy; a repository the mapping marks `trust_remote_code=True` is exempt. A failed call (no network, a
    proxy, an expired token: HTTP 401 is re-raised with login advice) ends the load with "could not verify
    publisher trust status", and a publisher not marked trusted with "is not from a trusted publisher" (allow it
    with `from_pretrained(..., allow_all_kernels=True)`, which transformers passes on as trust_remote_code).
    Offline, the check is skipped with a warning and the cache alone decides."""
    a = advice(ctx, c)
    if a.outcome not in ("online", "online-cached"):
        return
    yield kernels_trust_check.finding(
        Severity.WARN, a.reason, detected=a.hub, required="the Hub's organization API reachable at load, or "
                                                          "HF_HUB_OFFLINE=1 with the kernels cached",
        option="use_kernels", fix=a.fix or kernels_trust_check.fix)


@rule("KERN003", "use_kernels is not a from_pretrained keyword in this transformers", scope="candidate",
      fix="drop use_kernels from the kwargs, or upgrade transformers to 4.53 or later")
def kernels_keyword(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """`use_kernels` is read by from_pretrained from transformers 4.53 (`kwargs.pop("use_kernels", False)`);
    before, an unknown keyword passes through to the model's `__init__`, which raises TypeError. The planner
    emits it only where the release reads it."""
    a = advice(ctx, c)
    if a.outcome != "keyword-unknown":
        return
    yield kernels_keyword.finding(Severity.FAIL, f"{a.reason}; {a.problem}", detected=f"transformers {a.release}",
                                  required="transformers >= 4.53", option="use_kernels", fix=a.fix)
