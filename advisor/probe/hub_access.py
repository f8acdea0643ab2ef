"""How a load here would reach the Hugging Face Hub, from the environment alone; the network only when allowed.

Why (issue 24): transformers 5.25 kernelizes every load by default, and `kernels` 0.19.1 behaves differently
offline and online. Offline (huggingface_hub's `HF_HUB_OFFLINE`), it resolves `version=N` only from the cache
file `refs/v<N>` and raises "Version N of 'repo' is not available in the local cache and Hugging Face Hub is in
offline mode" without it (kernels `_internals/_versions.py:78-82`). Online, it first asks the Hub whether the
repository's publisher is trusted, even for a cached kernel, and raises "could not verify publisher trust
status" when that call fails (`_internals/hf_hub.py:127-145`, called by `HubResolver.resolve`,
`_internals/resolver.py:308-315`).

The offline switch is read as huggingface_hub reads it (`constants.py:194`: `HF_HUB_OFFLINE`, else
`TRANSFORMERS_OFFLINE`, true for 1/ON/YES/TRUE in any case), because `kernels` asks `constants.HF_HUB_OFFLINE`
(`_internals/load.py:187`). Whether the Hub answers is checked with `advisor.io.hub_reach`'s bounded connection
only when the user allowed the network (`--allow-download`); otherwise it stays "not checked".
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from advisor.facts import HubAccess, Unavailable

__all__ = ["hub_offline", "probe_hub_access", "with_reachability"]

_TRUE = ("1", "ON", "YES", "TRUE")  # huggingface_hub constants.ENV_VARS_TRUE_VALUES (2.4.0 constants.py:12)


def hub_offline(environ: Mapping[str, str]) -> tuple[bool, str]:
    """(offline, the variable that decided it) as huggingface_hub computes HF_HUB_OFFLINE at import."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = environ.get(var)
        if value:  # `os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")`: the first set
            return value.upper() in _TRUE, f"{var}={value}"
    return False, ""


def probe_hub_access(environ: Mapping[str, str] | None = None) -> HubAccess:
    """The Hub-related variables of this environment; reachability is left "not checked"."""
    env = os.environ if environ is None else environ
    offline, source = hub_offline(env)
    return HubAccess(
        offline=offline,
        offline_source=source,
        use_hub_kernels=env.get("USE_HUB_KERNELS"),
        kernels_cache=env.get("KERNELS_CACHE") or None,
        endpoint=env.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/"),
    )


def with_reachability(hub: HubAccess, *, timeout: float = 2.0, environ: Mapping[str, str] | None = None) -> HubAccess:
    """`hub` with `reachable` filled by one bounded connection to its endpoint (advisor.io.hub_reach). Call only
    when the user allowed the network; offline, nothing is tried (the load would not use the network either)."""
    if hub.offline:
        return hub.model_copy(update={"reachable": Unavailable(
            reason=f"not checked: {hub.offline_source} keeps every load offline")})
    from advisor.errors import ModelResolutionError
    from advisor.io.hub_reach import check_hub_reachable

    try:
        check_hub_reachable("kernels", timeout=timeout, environ=environ)
    except ModelResolutionError:
        return hub.model_copy(update={"reachable": False})
    return hub.model_copy(update={"reachable": True})
