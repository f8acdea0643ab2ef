"""Fine-grained FP8 needs a Hub kernel from transformers 5.4: is it usable on the target?

Why: an H200 run (docs/gpu/quant-methods/, transformers 5.17.0) loaded a model with FineGrainedFP8Config (8
FP8Linear) and failed at the first forward: `ImportError: finegrained-fp8 kernel unavailable: kernels is
either not installed or uses an incompatible version` (5.17.0 integrations/finegrained_fp8.py:106-109). The
FP8 matmul is then `kernels-community/finegrained-fp8`, loaded through the `kernels` package (5.4.0
finegrained_fp8.py:50 `get_kernel(...)`; `lazy_load_kernel("finegrained-fp8")` from 5.5.4), at the major version
pinned in `_HUB_KERNEL_MAPPING` (v4 from 5.14). Before 5.4 the matmul was a Triton kernel inside that file.
All three facts are generated per release into data/release_constraints.json (`fp8_hub_kernel`,
`fp8_kernel_version`, `kernels_window`).

So the method is usable only where `kernels` is installed, imports and sits in the release's window, and the
kernel is in the local cache (the advisor's own loads run with HF_HUB_OFFLINE=1; offline, kernels >= 0.16
finds version N only through the cache file `refs/v<N>`, advisor/probe/hub_cache.py) - or where the user lets
the load download it (`--allow-download`: then a warning, not a failure). For the older `kernels` windows
(< 0.16, transformers 5.4-5.14) any cached snapshot of the repo counts: those releases resolved versions online.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from advisor.facts import Environment
from advisor.knowledge import version_matches
from advisor.knowledge.releases import ReleaseConstraints, load_release_constraints

__all__ = ["KernelNeed", "fetch_command", "hub_kernel_need"]

_REF_CACHE_FROM = Version("0.16.0")  # kernels 0.16: repo type "kernel", offline versions read from refs/v<N>


@dataclass(frozen=True)
class KernelNeed:
    """What the FP8 Hub kernel needs on this target, and what is missing."""

    repo: str
    ref: str  # "v4" (the pinned major version) or "main" (no pin)
    window: str  # the `kernels` versions the release accepts, e.g. ">=0.16.0,<0.17.0" ("" when unbounded)
    cite: str  # where the release says so
    problems: tuple[str, ...]  # each names one missing thing; any problem fails the method
    fixes: tuple[str, ...]  # commands, in order
    warnings: tuple[str, ...] = ()  # usable, with a caveat (downloads on first use; cache not probed)

    @property
    def ok(self) -> bool:
        return not self.problems

    def needs(self) -> str:
        return f"kernels{self.window} and the Hub kernel {self.repo} ({self.ref})"


def _window(env_tf: str, rc: ReleaseConstraints) -> str:
    run = rc.at("kernels_window", env_tf)
    value = (run.value if run is not None else None) or {}
    low, high = value.get("min"), value.get("max")
    return (f">={low}" if low else "") + (f",<{high}" if low and high else f"<{high}" if high else "")


def _modern(window: str, installed: str | None) -> bool:
    """Whether the `kernels` in play caches kernels by ref (>= 0.16): the installed one, else the window's floor."""
    text = installed or (window.split(",")[0].removeprefix(">=") if window.startswith(">=") else "")
    try:
        return Version(text) >= _REF_CACHE_FROM
    except InvalidVersion:
        return True


def fetch_command(repo: str, ref: str, *, modern: bool = True) -> str:
    """One download, on the target, that leaves the kernel where offline `kernels` finds it: a snapshot of the
    ref's branch (which also writes `refs/<ref>`; `get_kernel` online downloads by commit and writes none)."""
    kind = ", repo_type='kernel'" if modern else ""
    return (f"python -c \"from huggingface_hub import snapshot_download; "
            f"snapshot_download('{repo}'{kind}, revision='{ref}')\"")


def hub_kernel_need(env: Environment, method_key: str, *, allow_download: bool = False,
                    cache: bool = True) -> KernelNeed | None:
    """None when the target's transformers needs no Hub kernel for `method_key` (only fine-grained FP8 is
    tabulated: "fp8") or its version is unknown; else what is there and what is missing."""
    tf = env.version_of("transformers")
    if method_key != "fp8" or tf is None:
        return None
    rc = load_release_constraints(cache=cache)
    load = rc.at("fp8_hub_kernel", tf)
    if load is None or not load.value:
        return None
    repo = str(load.value["repo"])
    pinned = rc.at("fp8_kernel_version", tf)
    ref = f"v{pinned.value}" if pinned is not None and pinned.value else "main"
    window = _window(tf, rc)
    cite = load.cite() + (f"; version {pinned.value}: {pinned.cite()}" if pinned is not None and pinned.value else "")
    lib = env.library("kernels")
    modern = _modern(window, lib.version if lib.installed else None)
    problems: list[str] = []
    fixes: list[str] = []
    warnings: list[str] = []
    install = f"pip install 'kernels{window}'" if window else "pip install kernels"
    if not lib.installed:
        problems.append(f"kernels{window} (not installed)")
        fixes.append(install)
    elif window and not version_matches(lib.version, window):
        problems.append(f"kernels{window} (installed {lib.version})")
        fixes.append(install)
    elif lib.importable is False:
        problems.append(f"kernels {lib.version} does not import: {lib.error or 'unknown error'}")
        fixes.append(f"pip install --force-reinstall 'kernels{window}'")
    cached = lib.details.get("hub_cache") if lib.installed else None
    fetch = fetch_command(repo, ref, modern=modern)
    if isinstance(cached, list):
        have = [c for c in cached if c.split("@")[0] == repo]
        if (f"{repo}@{ref}" in have) if modern else bool(have):
            return KernelNeed(repo, ref, window, cite, tuple(problems), tuple(fixes), tuple(warnings))
        where = lib.details.get("hub_cache_dir") or "the Hub cache"
        state = (f"cached only as {', '.join(have)}, which offline `kernels` cannot resolve to {ref}" if have
                 else f"not in the local cache {where}")
    else:
        state = "its presence in the local cache is unknown (the kernels package was not probed)" if lib.installed \
            else "needed in the local Hub cache too (the advisor's own loads are offline)"
    if allow_download:
        warnings.append(f"the Hub kernel {repo} ({ref}): {state}; from_pretrained downloads it at the first "
                        "forward (needs network there)")
    elif lib.installed and not isinstance(cached, list):
        warnings.append(f"the Hub kernel {repo} ({ref}): {state}; without network it must be cached: {fetch}")
    else:
        problems.append(f"the Hub kernel {repo} ({ref}): {state}")
        fixes.append(f"fetch it once on the target: {fetch}")
    return KernelNeed(repo, ref, window, cite, tuple(problems), tuple(fixes), tuple(warnings))
