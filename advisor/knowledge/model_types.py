"""Does the target's transformers know a config's `model_type`? And which release first did?

Why: transformers cannot load a config whose `model_type` is in none of its auto mappings (and that has no
`auto_map` for custom code), yet the planner used to plan it as "ok: sdpa". The answer comes from the
installed transformers when the target runs that exact release, else from the per-release history
(`data/attention_history.json`), which records each model type's presence per stored release.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.version import InvalidVersion, Version

__all__ = ["ModelTypeKnowledge", "model_type_known"]


@dataclass(frozen=True)
class ModelTypeKnowledge:
    """known: True/False, or None when nothing can be said (release older than the history, no data)."""

    known: bool | None
    source: str
    first_release: str | None = None  # first stored release that has the model type, when the history knows it


def _installed() -> str | None:
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _installed_knows(model_type: str) -> bool | None:
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # type: ignore[attr-defined]
    except ImportError:
        return None
    return model_type in CONFIG_MAPPING_NAMES


def model_type_known(model_type: str, target: str | None) -> ModelTypeKnowledge:
    """Whether transformers `target` (None: the installed one) has `model_type` in its auto mappings."""
    from advisor.knowledge.history import load_history

    history = load_history()
    first = None
    row = history.architectures.get(model_type)
    if row is not None:
        presence = row.presence()
        index = next((i for i, ch in enumerate(presence) if ch != "-"), None)
        first = history.releases[index] if index is not None else None
    here = _installed()
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
        known = _installed_knows(model_type)
        if known is not None:
            return ModelTypeKnowledge(known, f"transformers {here} (installed) CONFIG_MAPPING_NAMES", first)
    try:
        at = history.support_at(version)
    except ValueError:
        return ModelTypeKnowledge(None, f"transformers {version} is older than the stored history", first)
    known = model_type in at.architectures or model_type in at.unreadable
    return ModelTypeKnowledge(known, f"transformers {at.release} (data/attention_history.json)", first)
