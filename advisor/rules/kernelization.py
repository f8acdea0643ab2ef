"""Hub kernels as a plan dimension: will this load kernelize, which Hub kernels does it need, can it get them?

Why (issue 24): transformers 5.25 turned Hub kernels on by default. `from_pretrained(use_kernels=None)` means
True unless `USE_HUB_KERNELS` says no (modeling_utils.py:4415-4423), and then `set_use_kernels` kernelizes the
model after loading it (modeling_utils.py:4494-4495): RMSNorm, activations and RoPE are swapped for Hub kernels
(integrations/hub_kernels.py). On an H100 without network, the plain load of a tiny Llama failed:

- with `HF_HUB_OFFLINE=1`: `ValueError: Version 2 of 'kernels-community/rotary' is not available in the local
  cache and Hugging Face Hub is in offline mode` (kernels 0.19.1 `_internals/_versions.py:78-82`: offline,
  `version=N` resolves only through the cache file `refs/v<N>`);
- without it: `ValueError: Kernel repository 'kernels-community/rotary' could not verify publisher trust status`
  (`_internals/hf_hub.py:127-145`: online, every repository not marked `trust_remote_code` is checked against
  the Hub's publisher record first, cached or not, and a failed call raises).

kernelize's fallback to the torch layer covers only `FileNotFoundError` (kernels `layer/layer.py:689-700`,
`KernelizeFallback.CANNOT_LOAD`): a cached ref whose snapshot or build variant is missing falls back silently,
but both errors above are `ValueError` and end the load. And where `kernels` is missing or outside the release's
window, 5.25's default load raises `ValueError: Kernels are not available` on every device, the CPU included
(modeling_utils.py:3889-3895).

So the planner decides `use_kernels` per candidate: it leaves the release's default where the kernels the model
needs on this device are usable, and emits `use_kernels=False`, with the reason and the command that caches
them, where they are not. `advisor check` fails a configuration that would hit one of these errors (KERN001),
warns where the load depends on the Hub's publisher check (KERN002), and fails `use_kernels` passed to a release
whose from_pretrained does not read it (KERN003). The effect of kernelization on speed and memory is reported as
measured only where a measurement exists; none is shipped, so it reads "unmeasured".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.facts import Environment, HubAccess, Unavailable
from advisor.knowledge import version_matches
from advisor.knowledge.hub_kernels import KernelRepo, TargetDevice, device_of, mapping_for, select
from advisor.knowledge.releases import FactRun, ReleaseConstraints, load_release_constraints
from advisor.model.kernel_layers import model_layers

if TYPE_CHECKING:
    from advisor.model.spec import ModelSpec

__all__ = ["HubKernelAdvice", "NeededKernel", "hub_kernel_advice", "precache_command"]

Outcome = Literal[
    "not-applicable",  # release unknown or older than the stored ones
    "keyword-unknown",  # use_kernels passed to a release whose from_pretrained does not read it (KERN003)
    "off",  # use_kernels False (asked, or the release's default)
    "disabled-env",  # USE_HUB_KERNELS switches them off
    "package",  # kernelization on, and the kernels package missing, outside the window or broken: load raises
    "no-kernels",  # nothing of this model has a kernel on this device (the CPU, or unmapped layers)
    "ready",  # offline, every version-pinned kernel needed is cached
    "online",  # the Hub answers (checked): kernels are fetched and their publisher checked at load
    "online-cached",  # not offline, reachability not checked, all cached: the publisher check needs the Hub
    "blocked",  # the load raises (offline and a kernel missing; or the Hub unreachable when checked)
    "blocked-presumed",  # not offline, reachability not checked, a kernel missing: planned as unreachable
    "unknown",  # mapping or layers unknown and something might be missing
]
_CULPRIT_OUTCOMES = ("package", "blocked", "blocked-presumed", "unknown")
KERNELS_SRC = "kernels 0.19.1"


class NeededKernel(BaseModel):
    """One Hub repository the load needs on this device, and whether it is in the local cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    ref: str  # "v2" (version-pinned: resolved offline through refs/v2) or a commit (revision-pinned)
    layers: list[str]
    cached: bool | None  # None: the cache was not listed (kernels not probed)
    trust_remote_code: bool = False  # the mapping skips the publisher check for it
    install: str = ""  # the install_kernel(...) call that caches it


class HubKernelAdvice(BaseModel):
    """What one load does about Hub kernels on one placement, why, and what the plan sets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    release: str | None
    placement: str
    outcome: Outcome
    kernelizes: bool | None  # whether the load (as given, or as the release's default) kernelizes
    requested: bool | None  # use_kernels as passed (None: not passed)
    default: bool | None  # the release's default (None: from_pretrained does not read use_kernels)
    default_source: str = ""
    env: str = ""  # how USE_HUB_KERNELS reads
    package: str = ""  # the kernels package against the release's window
    device: str = ""
    layers: list[str] | None = None
    layers_source: str = ""
    mapping_source: str = ""
    needed: list[NeededKernel] = Field(default_factory=list)
    hub: str = ""  # offline, reachable, not checked
    emit: bool | None = None  # the use_kernels value a plan emits (None: leave the release's default)
    problem: str = ""  # the error the load raises (or would, where the Hub does not answer)
    reason: str = ""  # one sentence: what happens and why
    fix: str = ""
    precache: str = ""  # the command that caches the missing kernels
    effect: str = "unmeasured"  # kernelization's effect on speed and memory

    def summary(self) -> str:
        """One line for a report: on or off, why, and how to turn them on where the plan turned them off."""
        needed = ", ".join(f"{n.repo} {n.ref}" + ("" if n.cached is None else " (cached)" if n.cached
                                                  else " (not cached)") for n in self.needed)
        if self.outcome == "not-applicable" or self.outcome == "keyword-unknown":
            return self.reason
        if self.outcome == "off" or self.outcome == "disabled-env":
            return f"off: {self.reason}"
        if self.outcome == "no-kernels":
            return f"on ({self.default_source}), nothing to load: {self.reason}"
        lead = "off (use_kernels=False)" if self.emit is False else "on"
        text = f"{lead}; needs {needed}" if needed else lead
        text += f"; {self.hub}" if self.hub else ""
        if self.emit is False and self.precache:
            text += f". To use them, cache them once with network and load with HF_HUB_OFFLINE=1: {self.precache}"
        elif self.outcome in ("ready", "online", "online-cached"):
            text += f"; effect on speed and memory: {self.effect}"
        return text


def precache_command(repos: list[KernelRepo]) -> str:
    """One command that fetches `repos` into the cache `kernels` reads offline, recording each `refs/v<N>`
    (kernels 0.19.1 `install_kernel` -> `resolve_kernel_version`, `_internals/_versions.py:219-233`). Run it on
    the target with network, or on a machine with the same torch/CUDA/Python and copy the `kernels--*` folders
    into the target's KERNELS_CACHE (else HF_HUB_CACHE). `kernels download` needs a project's kernels.lock and
    fetches by commit only, writing no `refs/v<N>`, so offline resolution would still fail."""
    calls = "; ".join(r.install_call() for r in repos)
    return f'python -c "from kernels import install_kernel; {calls}"'


def _gate(tf: str, hub: HubAccess | None, rc: ReleaseConstraints) -> tuple[bool, str]:
    """Whether USE_HUB_KERNELS leaves kernels on in this release, and how it reads."""
    run = rc.at("hub_kernels_env", tf)
    gate = run.value if run is not None else None
    value = hub.use_hub_kernels if hub is not None else None
    if not isinstance(gate, dict):
        return True, "USE_HUB_KERNELS: not read by this release"
    default = str(gate.get("default") or "YES")
    shown = value if value is not None else f"unset (default {default})"
    on = (value if value is not None else default).lower() in [str(v) for v in gate.get("true") or []]
    where = run.cite() if run is not None else ""
    return on, f"USE_HUB_KERNELS={shown}: {'on' if on else 'off'} ({where})"


def _package(tf: str, env: Environment, rc: ReleaseConstraints) -> tuple[bool, str, str]:
    """(usable, how it reads, the error the release raises without it)."""
    run = rc.at("kernels_window", tf)
    window = (run.value if run is not None else None) or {}
    low, high = window.get("min"), window.get("max")
    spec = (f">={low}" if low else "") + (f",<{high}" if low and high else f"<{high}" if high else "")
    lib = env.library("kernels")
    error = (f"ValueError: Kernels are not available. Please install a compatible version ({low} <= version < "
             f"{high}), e.g. `pip install kernels=={low}` (transformers {tf} modeling_utils.set_use_kernels)"
             if low and high else f"transformers {tf} cannot kernelize without the `kernels` package")
    if not lib.installed:
        required = rc.at("kernels_required", tf)
        core = (f"; transformers {tf} requires kernels{required.value} itself ({required.cite()}), so its install is "
                "incomplete" if required is not None and required.value else "")
        return False, f"kernels not installed (transformers {tf} accepts kernels{spec}{core})", error
    if spec and not version_matches(lib.version, spec):
        return False, f"kernels {lib.version}, outside transformers {tf}'s window {spec}", error
    if lib.importable is False:
        return False, f"kernels {lib.version} does not import: {lib.error or 'unknown error'}", error
    return True, f"kernels {lib.version}" + (f" (in {spec})" if spec else ""), error


def _cached(repo: KernelRepo, env: Environment) -> bool | None:
    listing = env.library("kernels").details.get("hub_cache") if env.library("kernels").installed else None
    if not isinstance(listing, list):
        return None
    return f"{repo.repo_id}@{repo.ref}" in listing


def _hub_state(hub: HubAccess | None) -> tuple[bool, bool | None, str]:
    """(offline, reachable (None: not checked), how it reads)."""
    if hub is None:
        return False, None, "Hub access not recorded in this snapshot (treated as online, reachability not checked)"
    if hub.offline:
        return True, None, f"offline ({hub.offline_source})"
    if isinstance(hub.reachable, Unavailable):
        return False, None, f"online (HF_HUB_OFFLINE unset); whether the Hub answers: {hub.reachable.reason}"
    return False, hub.reachable, f"online, {hub.endpoint} {'reachable' if hub.reachable else 'unreachable'}"


def _source(env: Environment, where: str) -> str:
    """`kernels 0.19.1 <file:lines>`, saying so where the target's kernels is another release."""
    here = env.library("kernels").version
    return f"{KERNELS_SRC} {where}" + ("" if here in (None, "0.19.1") else f"; the target has kernels {here}")


def _offline_error(repo: KernelRepo, env: Environment) -> str:
    if isinstance(repo.version, int):
        return (f"ValueError: Version {repo.version} of '{repo.repo_id}' is not available in the local cache and "
                f"Hugging Face Hub is in offline mode ({_source(env, '_internals/_versions.py:78-82')})")
    if isinstance(repo.version, str):
        return (f"an error resolving '{repo.repo_id}' {repo.ref}: a version range is resolved against the Hub's "
                "list of versions, which offline mode forbids")
    return (f"ValueError: Cannot resolve revision '{repo.revision or 'main'}' of '{repo.repo_id}' to a commit: the "
            f"ref is not in the local cache and Hugging Face Hub is in offline mode "
            f"({_source(env, '_internals/_versions.py:186-193')})")


def _trust_error(repo: KernelRepo, env: Environment) -> str:
    return (f"ValueError: Kernel repository '{repo.repo_id}' could not verify publisher trust status "
            f"({_source(env, '_internals/hf_hub.py:131-145')}: the publisher check asks the Hub even for a cached "
            "kernel)")


def hub_kernel_advice(
    env: Environment, model: ModelSpec | None, placement: str, *, requested: bool | None = None, cache: bool = True,
) -> HubKernelAdvice:
    """What a load of `model` on `placement` ("gpu", "multi-gpu", "cpu") does about Hub kernels on `env`,
    with `use_kernels=requested` (None: not passed). Never raises; unknown stays unknown. `cache=False`:
    --no-cache (an installed release's facts and the model's layers read without the user's analysis cache)."""
    tf = env.version_of("transformers")
    rc = load_release_constraints(cache=cache)
    default_run: FactRun | None = rc.at("use_kernels_default", tf) if tf else None
    base: dict[str, Any] = {"release": tf, "placement": placement, "requested": requested}
    if tf is None or default_run is None:
        why = "transformers is not installed on the target" if tf is None else \
            f"transformers {tf} is older than every stored release"
        return HubKernelAdvice(**base, outcome="not-applicable", kernelizes=None, default=None, reason=why)
    default = default_run.value
    base |= {"default": default, "default_source": default_run.cite()}
    if default is None:
        if requested is not None:
            return HubKernelAdvice(
                **base, outcome="keyword-unknown", kernelizes=False,
                problem=f"TypeError: {model.architecture if model else 'the model'}.__init__() got an unexpected "
                        "keyword argument 'use_kernels'",
                reason=f"transformers {tf}'s from_pretrained does not read use_kernels (from 4.53 it does): the "
                       f"keyword reaches the model's __init__ ({default_run.cite()})",
                fix="drop use_kernels from the kwargs, or upgrade transformers to 4.53 or later")
        return HubKernelAdvice(**base, outcome="not-applicable", kernelizes=False,
                               reason=f"transformers {tf} has no Hub-kernel switch in from_pretrained")
    wanted = requested if requested is not None else bool(default)
    if not wanted:
        why = "use_kernels=False" if requested is False else f"transformers {tf} leaves Hub kernels off by default"
        return HubKernelAdvice(**base, outcome="off", kernelizes=False, reason=f"{why} ({default_run.cite()})")
    enabled, env_text = _gate(tf, env.hub, rc)
    base |= {"env": env_text}
    if not enabled:
        return HubKernelAdvice(
            **base, outcome="disabled-env", kernelizes=False, emit=False if requested is None else None,
            reason=f"{env_text}: transformers turns Hub kernels off here; the plan says use_kernels=False so the "
                   "kwargs load the same where that variable is unset")
    usable, package_text, package_error = _package(tf, env, rc)
    base |= {"package": package_text}
    if not usable:
        return HubKernelAdvice(
            **base, outcome="package", kernelizes=True, emit=False if requested is None else None,
            problem=package_error,
            reason=f"{package_text}: from_pretrained kernelizes by default and raises without a usable kernels, "
                   "on every device",
            fix="pass use_kernels=False (or set USE_HUB_KERNELS=0), or install the kernels version the message "
                "names")
    gpu = env.gpu_list[0] if placement != "cpu" and env.gpu_list else None
    device: TargetDevice = device_of(gpu)
    base |= {"device": device.label}
    mapping, mapping_source = mapping_for(tf, cache=cache)
    base |= {"mapping_source": mapping_source}
    offline, reachable, hub_text = _hub_state(env.hub)
    base |= {"hub": hub_text}
    if mapping is None:
        return _unknown(env, base, f"the kernel mapping is unknown: {mapping_source}", offline, reachable, [])
    on_device = sorted({r for layer in mapping if (r := select(mapping, layer, device)) is not None},
                       key=lambda r: r.repo_id)
    if not on_device:
        return HubKernelAdvice(**base, outcome="no-kernels", kernelizes=True,
                               reason=f"transformers {tf}'s mapping has no kernel for {device.label}: every layer "
                                      "keeps its torch implementation")
    layers, layers_source = model_layers(model, tf, cache=cache) if model is not None else (None, "no model")
    base |= {"layers": layers, "layers_source": layers_source}
    if layers is None:
        return _unknown(env, base, f"which layers the model kernelizes is unknown: {layers_source}", offline,
                        reachable, on_device)
    needed: dict[KernelRepo, list[str]] = {}
    for layer in layers:
        repo = select(mapping, layer, device)
        if repo is not None:
            needed.setdefault(repo, []).append(layer)
    rows = [NeededKernel(repo=r.repo_id, ref=r.ref, layers=sorted(ls), cached=_cached(r, env),
                         trust_remote_code=r.trust_remote_code, install=r.install_call())
            for r, ls in sorted(needed.items(), key=lambda kv: kv[0].repo_id)]
    base |= {"needed": rows}
    if not needed:
        return HubKernelAdvice(**base, outcome="no-kernels", kernelizes=True,
                               reason=f"none of the model's kernel layers ({', '.join(layers) or 'none'}) has a "
                                      f"kernel for {device.label} in transformers {tf}")
    return _decide(base, list(needed), env, offline, reachable, requested)


def _missing(repos: list[KernelRepo], env: Environment) -> list[KernelRepo]:
    """Repositories whose ref is not in the cache: offline, resolving it raises ValueError (a version needs
    `refs/v<N>`, a branch `refs/<branch>`, and a version range the Hub's list), which kernelize does not catch.
    A commit pin needs no ref, and its missing snapshot falls back to torch."""
    return [r for r in repos if not r.pinned_commit and (isinstance(r.version, str) or _cached(r, env) is not True)]


def _decide(base: dict[str, Any], repos: list[KernelRepo], env: Environment, offline: bool,
            reachable: bool | None, requested: bool | None) -> HubKernelAdvice:
    """`repos` in the order kernelize loads them (the model's module order): the first missing one is the error."""
    missing = _missing(repos, env)
    checked = [r for r in repos if not r.trust_remote_code]
    names = ", ".join(f"{r.repo_id} ({r.ref})" for r in repos)
    emit = False if requested is None else None
    precache = precache_command(missing or repos)
    off = "pass use_kernels=False (or set USE_HUB_KERNELS=0)"
    if offline:
        if missing:
            listing = env.library("kernels").details.get("hub_cache")
            where = env.library("kernels").details.get("hub_cache_dir") or "the local cache"
            if not isinstance(listing, list):
                tail = "the kernel cache was not listed (the kernels package was not probed)"
            elif len(missing) == len(repos):
                tail = f"{'none is' if len(repos) > 1 else 'it is not'} in {where}"
            else:
                listed = ", ".join(f"{r.repo_id} {r.ref}" for r in missing)
                tail = f"{listed} {'is' if len(missing) == 1 else 'are'} not in {where}"
            return HubKernelAdvice(
                **base, outcome="blocked", kernelizes=True, emit=emit, problem=_offline_error(missing[0], env),
                precache=precache, reason=f"the load is offline and needs {names}; {tail}",
                fix=f"{off}; or cache them once with network: {precache}")
        return HubKernelAdvice(**base, outcome="ready", kernelizes=True,
                               reason=f"offline, and {names} {'is' if len(repos) == 1 else 'are'} cached: the load "
                                      "kernelizes (the publisher check is skipped offline; a cached kernel without "
                                      "a build for this torch/CUDA falls back to torch, kernels layer/layer.py:"
                                      "689-700)",
                               effect=_effect())
    if reachable is True:
        fetch = f"; {', '.join(r.repo_id for r in missing)} will be downloaded at the first load" if missing else ""
        return HubKernelAdvice(
            **base, outcome="online", kernelizes=True, precache=precache if missing else "",
            reason=f"the Hub answers: the load checks the publisher of {', '.join(r.repo_id for r in checked)} on "
                   f"the Hub before using {'it' if len(checked) == 1 else 'them'}{fetch}",
            fix="nothing, while the Hub's organization API answers; behind a proxy that blocks it, set "
                f"HF_HUB_OFFLINE=1 with the kernels cached ({precache}), or {off}",
            effect=_effect())
    if reachable is False:
        first = checked[0] if checked else repos[0]
        return HubKernelAdvice(
            **base, outcome="blocked", kernelizes=True, emit=emit, problem=_trust_error(first, env), precache=precache,
            reason=f"online mode (HF_HUB_OFFLINE unset) and the Hub does not answer: the publisher check of "
                   f"{first.repo_id} fails before any cached copy is used",
            fix=f"{off}; or cache {names} and set HF_HUB_OFFLINE=1 where the model loads: {precache}")
    if missing:
        first = checked[0] if checked else missing[0]
        return HubKernelAdvice(
            **base, outcome="blocked-presumed", kernelizes=True, emit=emit, problem=_trust_error(first, env),
            precache=precache,
            reason=f"{', '.join(r.repo_id + ' ' + r.ref for r in missing)} not cached, and whether the Hub answers "
                   "was not checked (the advisor makes no network call without --allow-download): planned as if it "
                   "does not, where the load fails with the publisher-check error (or, with HF_HUB_OFFLINE=1, the "
                   "offline-cache error)",
            fix=f"{off}; or cache them once with network and set HF_HUB_OFFLINE=1: {precache}; or check the Hub "
                "with --allow-download")
    return HubKernelAdvice(
        **base, outcome="online-cached", kernelizes=True, precache=precache,
        reason=f"{names} {'is' if len(repos) == 1 else 'are'} cached, but HF_HUB_OFFLINE is unset: kernels then "
               "checks each publisher on the Hub before using even a cached kernel, and without network the load "
               f"fails ({_trust_error(checked[0] if checked else repos[0], env)})",
        fix=f"set HF_HUB_OFFLINE=1 where the model loads (the cache then suffices), or {off}",
        effect=_effect())


def _unknown(env: Environment, base: dict[str, Any], why: str, offline: bool, reachable: bool | None,
             candidates: list[KernelRepo]) -> HubKernelAdvice:
    """Mapping or layers unknown: safe only where every kernel the device could use is cached offline, or the
    Hub answers."""
    if reachable is True or (offline and candidates and not _missing(candidates, env)):
        return HubKernelAdvice(**base, outcome="online" if reachable else "ready", kernelizes=True,
                               reason=f"{why}; every kernel the release maps for this device is "
                                      f"{'reachable' if reachable else 'cached'}", effect=_effect())
    requested = base.get("requested")
    return HubKernelAdvice(
        **base, outcome="unknown", kernelizes=True, emit=False if requested is None else None,
        precache=precache_command(_missing(candidates, env) or candidates) if candidates else "",
        reason=f"{why}; the load may need a Hub kernel that is not cached" +
               ("" if offline else ", and whether the Hub answers was not checked"),
        fix="pass use_kernels=False (or set USE_HUB_KERNELS=0), or cache the release's kernels for this device")


def _effect() -> str:
    """Kernelization's measured effect, where the measurement store has one; none is shipped."""
    return ("unmeasured: no timing of use_kernels on vs off for this GPU and model in the measurement store "
            "(data/measurements)")


def culprit(advice: HubKernelAdvice) -> bool:
    """Whether the load as given fails (or may fail) because of Hub kernels."""
    return advice.outcome in _CULPRIT_OUTCOMES
