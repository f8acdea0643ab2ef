"""Does the target's transformers know a config's `model_type`? And which release first did?

Why: transformers cannot load a config whose `model_type` is in none of its auto mappings (and that has no
`auto_map` for custom code), yet the planner used to plan it as "ok: sdpa". The answer comes from the
installed transformers when the target runs that exact release, else from the per-release history
(`data/attention_history.json`), which records each model type's presence per stored release.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from advisor.knowledge.installed import installed_version

__all__ = ["ModelTypeKnowledge", "model_type_known"]


@dataclass(frozen=True)
class ModelTypeKnowledge:
    """known: True/False, or None when nothing can be said (release older than the history, no data)."""

    known: bool | None
    source: str
    first_release: str | None = None  # first stored release that has the model type, when the history knows it


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _installed_types(cache: bool) -> tuple[list[str], str] | None:
    """The installed release's model types and where they came from: its auto mapping, executed once in a child
    (`advisor.knowledge.installed`, cached by release), so a later run imports nothing."""
    from advisor.knowledge.installed import installed, release_info

    here = installed()
    info = release_info(here, cache=cache) if here is not None else None
    if here is None or info is None:
        return None
    return list(info["model_types"]), f"transformers {here.version} (installed) CONFIG_MAPPING_NAMES"


def model_type_known(model_type: str, target: str | None, *, cache: bool = True) -> ModelTypeKnowledge:
    """Whether transformers `target` (None: the installed one) has `model_type` in its auto mappings."""
    from advisor.knowledge.history import load_history

    history = load_history()
    first = None
    row = history.architectures.get(model_type)
    if row is not None:
        presence = row.presence()
        index = next((i for i, ch in enumerate(presence) if ch != "-"), None)
        first = history.releases[index] if index is not None else None
    here = installed_version()
    version = target or here
    if version is None:
        return ModelTypeKnowledge(None, "no transformers version to check against", first)
    if here is not None and _same(version, here):
        # NOTE: the stored history answers "yes" without importing transformers, so a known model plans on the
        # fast path (issue 14); only a type the history lacks is confirmed against the installed release
        try:
            stored = history.support_at(version)
        except ValueError:
            stored = None
        if stored is not None and _same(stored.release, here) and (
                model_type in stored.architectures or model_type in stored.unreadable):
            return ModelTypeKnowledge(True, f"transformers {stored.release} (data/attention_history.json)", first)
        types = _installed_types(cache)
        if types is not None:
            return ModelTypeKnowledge(model_type in types[0], types[1], first)
    try:
        at = history.support_at(version)
    except ValueError as exc:  # older than the history, or newer and not installed here: nothing to say
        return ModelTypeKnowledge(None, str(exc), first)
    known = model_type in at.architectures or model_type in at.unreadable
    return ModelTypeKnowledge(known, f"transformers {at.release} (data/attention_history.json)", first)
