"""Fail fast when the Hub cannot be reached, before huggingface_hub spends ~24 s retrying and printing.

NOTE: issue 14 item 11 - `--allow-download` with no network printed retry messages for 24 s. One bounded
connection attempt (DNS included, in a daemon thread) decides in at most `timeout` seconds.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from advisor.errors import ModelResolutionError

__all__ = ["check_hub_reachable", "hub_endpoint"]

TIMEOUT_S = 2.0


def hub_endpoint(environ: Mapping[str, str] | None = None) -> str:
    """The Hub address huggingface_hub will use (HF_ENDPOINT, else huggingface.co)."""
    env = os.environ if environ is None else environ
    return env.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline(env: Mapping[str, str]) -> bool:
    return any(env.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub_reachable(repo_id: str, *, timeout: float = TIMEOUT_S, environ: Mapping[str, str] | None = None) -> None:
    """Raise a one-line ModelResolutionError unless a TCP connection to the Hub opens within `timeout` seconds."""
    env = os.environ if environ is None else environ
    endpoint = hub_endpoint(env)
    if _offline(env):
        raise ModelResolutionError(
            f"cannot download {repo_id!r}: HF_HUB_OFFLINE is set; unset it, or pass a local folder or config.json")
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except BaseException as exc:  # reported below, in the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        why = f"no answer within {timeout:.0f} s"
    elif outcome[0] is not None:
        why = " ".join(str(outcome[0]).split()) or type(outcome[0]).__name__
    else:
        return
    raise ModelResolutionError(
        f"cannot download {repo_id!r}: {endpoint} is unreachable ({why}); check the network or pass a local "
        "folder or config.json")
