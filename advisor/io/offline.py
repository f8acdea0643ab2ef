"""No network unless the user passes `--allow-download` (issue 25).

Where the Hub was reached without being asked: importing a transformers model module (gpt_neo, for one) runs
`is_flash_attn_available(kernels_fallback_ok=True)`, which, with the `kernels` package installed, calls
`kernels.get_kernel` for the flash-attention fallback; that asks the Hub about the kernel's publisher
(`huggingface_hub.HfApi.get_organization_overview`), so `recommend` on a gpt_neo folder, a manifest check and
`matrix` each resolved huggingface.co four times. huggingface_hub refuses every request, before any socket is
opened, when `HF_HUB_OFFLINE` is set when it is imported (`huggingface_hub.constants`), and transformers reads its
offline mode from there.

So the CLI runs every command inside `offline()` unless it was given `--allow-download`: the variables are set
in this process, and so in every process it starts (the smoke and bench workers, the import and kernel probes),
and huggingface_hub's own flag is set in-process when it is already imported (kernels and transformers read it
on each call). The previous values come back after the command, so an embedding process (or a test) keeps its
own. The Python API leaves its host's environment alone; set `HF_HUB_OFFLINE=1` there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from advisor import env as envvars
from advisor.io.environ import scoped_environ

__all__ = ["OFFLINE_VARIABLES", "offline", "stay_offline"]

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def stay_offline(environ: MutableMapping[str, str] | None = None) -> None:
    """Make huggingface_hub (and so transformers and kernels) refuse every request, here and in children."""
    env = os.environ if environ is None else environ
    for name in OFFLINE_VARIABLES:
        env[name] = "1"
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")  # already imported: its value was read then
    if constants is not None and environ is None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


@contextmanager
def offline() -> Iterator[None]:
    """`stay_offline()` for the block; the environment and huggingface_hub's flag as they were after it."""
    try:
        with scoped_environ(keep=(*OFFLINE_VARIABLES, "HF_HUB_DISABLE_TELEMETRY")):
            stay_offline()
            yield
    finally:
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:  # as huggingface_hub computes it at import
            flag = envvars.read(envvars.HF_HUB_OFFLINE) or envvars.read(envvars.TRANSFORMERS_OFFLINE) or ""
            constants.HF_HUB_OFFLINE = flag.strip().upper() in ("1", "ON", "YES", "TRUE")  # type: ignore[attr-defined]
