"""When every smoke attempt fails the same way, the fault is not the configuration's: name it once, with its fix.

Why (issue 24): on an H100 with no network, transformers 5.25 kernelized every load by default and `advisor
smoke` failed all 9 candidates with the same `Version 2 of 'kernels-community/rotary' is not available in the
local cache` error, took 176 s and named no cause. A checkpoint whose generation config lacks
`decoder_start_token_id` fails every candidate of an encoder-decoder model the same way at `generate`.

So the smoke test stops after the second attempt when both failed with the same error (compared after
`normalize`, which drops what differs between runs: addresses, paths), and reports it once as an environment- or
model-level failure. Known errors get their cause and fix (the Hub-kernel errors point to the KERN rules' fix);
an unknown one is still reported once, as "not the configuration's fault". Errors that depend on the
configuration by nature (out of memory, a timeout, the kernel's OOM killer, a numerical comparison) never stop
the run early: the next, smaller or different, candidate may pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SmokeDiagnosis", "diagnose", "normalize"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")
_PATH = re.compile(r"(?<![\w.-])(?:~|\.{1,2})?(?:/[^\s'\"`:,;()\[\]]+)+")
_SPACE = re.compile(r"\s+")
# errors whose cause is the configuration's size or numerics: another candidate may pass
_CANDIDATE_DEPENDENT = re.compile(
    r"out of memory|timed out after|SIGKILL|killed, most likely|NaN or inf|cosine|max \|diff\||top-1|"
    r"weights stayed|not quantized", re.IGNORECASE)


class SmokeDiagnosis(BaseModel):
    """One error shared by the attempts: where the fault lies, why, and the fix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Literal["environment", "model", "unknown"]
    error: str  # the shared error, as the first attempt reported it
    cause: str
    fix: str
    code: str | None = None  # the advisor rule that predicts it before any load, where one does
    attempts: list[str] = Field(default_factory=list)  # the configurations that failed with it
    not_tried: list[str] = Field(default_factory=list)  # the configurations left untried (stopped early)
    reference: bool = False  # the float32 / eager reference failed the same way


def normalize(error: str | None) -> str:
    """The error with what differs between attempts of one fault removed: addresses, paths, spacing."""
    text = _ADDRESS.sub("0x_", error or "")
    text = _PATH.sub("<path>", text)
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class _Known:
    pattern: re.Pattern[str]
    scope: Literal["environment", "model"]
    explain: Callable[[re.Match[str], Sequence[Mapping[str, Any]]], tuple[str, str] | tuple[str, str, str | None]]
    code: str | None = None


_INSTALL = 'python -c "from kernels import install_kernel; install_kernel({repo!r}, version={version})"'
_KERNELS_OFF = ("pass use_kernels=False to from_pretrained (or set USE_HUB_KERNELS=0); `advisor recommend` emits "
                "it where KERN001 finds the kernels unusable")


def _attention_kernel(repo: str, kwargs: Sequence[Mapping[str, Any]]) -> bool:
    return any(str(k.get("attn_implementation") or "").split("|")[-1].split(":")[0].split("@")[0] == repo
               for k in kwargs)


def _offline_kernel(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str] | tuple[str, str, None]:
    version, repo = m.group(1), m.group(2)
    cause = (f"the Hub kernel {repo} (version {version}) is not in the local kernel cache, and the load runs offline "
             "(the smoke children set HF_HUB_OFFLINE=1): kernels 0.19.1 resolves version=N offline only through the "
             f"cache file refs/v{version} (_internals/_versions.py:78-82)")
    fetch = _INSTALL.format(repo=repo, version=version)
    if _attention_kernel(repo, kwargs):  # not kernelization: the attention kernel the kwargs name
        return (cause + "; it is the attn_implementation itself",
                f"choose another attn_implementation (sdpa), or cache the kernel once with network: {fetch}", None)
    cause += "; transformers 5.25 kernelizes every load by default"
    return cause, f"{_KERNELS_OFF}; or cache it once with network and keep HF_HUB_OFFLINE=1: {fetch}"


def _offline_ref(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    ref, repo = m.group(1), m.group(2)
    cause = (f"the Hub kernel {repo} at {ref} is not in the local kernel cache, and the load runs offline: kernels "
             f"0.19.1 resolves a branch offline only through the cache file refs/{ref} (_internals/_versions.py:"
             "186-193)")
    return cause, f"{_KERNELS_OFF}; or cache it once with network: " + \
        f'python -c "from kernels import install_kernel; install_kernel({repo!r}, revision={ref!r})"'


def _other_version(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    cause = (f"the kernel cache holds other versions of a Hub kernel ({m.group(2).strip() or 'none'}) than the "
             f"{m.group(1)} transformers asks for, and the load runs offline")
    return cause, f"{_KERNELS_OFF}; or cache version {m.group(1)} once with network (kernels.install_kernel)"


def _trust(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    cause = (f"the load runs online (HF_HUB_OFFLINE unset) and kernels could not ask the Hub whether {m.group(1)}'s "
             "publisher is trusted: it checks before using even a cached kernel (kernels 0.19.1 "
             "_internals/hf_hub.py:127-145)")
    return cause, f"{_KERNELS_OFF}; or cache the kernels and set HF_HUB_OFFLINE=1; or give the load network access"


def _untrusted(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    cause = f"the Hub says {m.group(1)}'s publisher is not a trusted kernel publisher"
    return cause, f"{_KERNELS_OFF}; or, if you trust it, pass allow_all_kernels=True to from_pretrained"


def _no_kernels(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    window = m.group(1)
    low, _, high = window.partition("<= version <")
    spec = f">={low.strip()},<{high.strip()}" if high else window
    cause = (f"the installed kernels package is missing or outside the window transformers accepts ({window}), and "
             "transformers 5.25 kernelizes every load by default, on every device")
    return cause, f"{_KERNELS_OFF}; or pip install 'kernels{spec}'"


def _decoder_start(m: re.Match[str], kwargs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    cause = ("the checkpoint's generation config (and config) has no decoder_start_token_id (nor bos_token_id): an "
             "encoder-decoder model cannot start its decoder in generate(), whatever the configuration")
    fix = ("set decoder_start_token_id in the model folder's generation_config.json (T5: its pad_token_id, 0; "
           "BART: its eos_token_id, 2), e.g. `g = GenerationConfig.from_pretrained(DIR); "
           "g.decoder_start_token_id = 0; g.save_pretrained(DIR)`, or pass decoder_start_token_id= to generate()")
    return cause, fix


_KNOWN = (
    _Known(re.compile(r"Version (\d+) of '([^']+)' is not available in the local cache"), "environment",
           _offline_kernel, "KERN001"),
    _Known(re.compile(r"Version (\d+) not found, available versions: ([\d, ]*)"), "environment", _other_version,
           "KERN001"),
    _Known(re.compile(r"Cannot resolve revision '([^']+)' of '([^']+)' to a commit: the ref is not in the local "
                      r"cache"), "environment", _offline_ref, "KERN001"),
    _Known(re.compile(r"Kernel repository '([^']+)' could not verify publisher trust status"), "environment", _trust,
           "KERN002"),
    _Known(re.compile(r"Kernel repository '([^']+)' is not from a trusted publisher"), "environment", _untrusted,
           "KERN002"),
    _Known(re.compile(r"Kernels are not available\. Please install a compatible version \(([^)]*)\)"), "environment",
           _no_kernels, "KERN001"),
    _Known(re.compile(r"`?decoder_start_token_id`? (?:or `?bos_token_id`? )?has to be defined"), "model",
           _decoder_start),
)


def _known(error: str, kwargs: Sequence[Mapping[str, Any]]) -> tuple[Literal["environment", "model"], str, str,
                                                                        str | None] | None:
    for known in _KNOWN:
        m = known.pattern.search(error)
        if m:
            answer = known.explain(m, kwargs)
            code = answer[2] if len(answer) == 3 else known.code
            return known.scope, answer[0], answer[1], code
    return None


def diagnose(attempts: Sequence[Any], *, not_tried: Sequence[str] = (), reference_error: str | None = None
             ) -> SmokeDiagnosis | None:
    """The shared fault of `attempts` (each with `label`, `ok`, `error`, `from_pretrained`), or None.

    A fault is shared when every attempt failed with the same normalized error that does not depend on the
    configuration; an unknown error needs two attempts to say so, a known one (its cause is not the
    configuration's) is named from the first."""
    if not attempts or any(a.ok or not a.error for a in attempts):
        return None
    first = normalize(attempts[0].error)
    if any(normalize(a.error) != first for a in attempts[1:]) or _CANDIDATE_DEPENDENT.search(first):
        return None
    kwargs = [a.from_pretrained for a in attempts]
    same_reference = reference_error is not None and normalize(reference_error) == first
    known = _known(attempts[0].error, kwargs)
    if known is None and len(attempts) < 2:
        return None
    if known is None:
        scope: Literal["environment", "model", "unknown"] = "unknown"
        cause = (f"{len(attempts)} different configurations failed with the same error"
                 + (", and so did the float32 / eager reference" if same_reference else "")
                 + ": the model's files or the environment, not the configuration, is the likely cause")
        fix = "fix the error above (it names what is missing), then run the smoke test again"
        code = None
    else:
        scope, cause, fix, code = known
    return SmokeDiagnosis(scope=scope, error=attempts[0].error, cause=cause, fix=fix, code=code,
                          attempts=[a.label for a in attempts], not_tried=list(not_tried), reference=same_reference)
