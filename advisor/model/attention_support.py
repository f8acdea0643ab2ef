"""Which attention implementations a model's class declares, for the target's transformers release.

When the target runs the transformers installed here, the class itself is asked (exact). Otherwise
the shipped table of the nearest release answers, and the answer says which release it came from.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from advisor.errors import UsageError
from advisor.facts import Environment
from advisor.knowledge import Knowledge
from advisor.knowledge.history import load_history
from advisor.knowledge.installed import attention_table, installed, installed_version, is_newer
from advisor.knowledge.introspect import class_support, composite_support
from advisor.knowledge.schema import AttentionSupportTable
from advisor.model.spec import ModelSpec

__all__ = ["attention_support", "nearest_table", "table_for"]


def _from_installed(model: ModelSpec, cache: bool) -> dict[str, bool] | None:
    """The installed classes' flags, served from the analysis cache when known (no transformers import)."""
    from advisor.model.analysis import cached_attention_support

    return cached_attention_support(model.model_type, model.architecture, lambda: _read_installed(model),
                                    cache=cache)


def _read_installed(model: ModelSpec) -> dict[str, bool] | None:
    try:
        import transformers
        from transformers.models.auto import modeling_auto
    except ImportError:
        return None
    names: list[str] = [model.architecture] if model.architecture else []
    base = modeling_auto.MODEL_MAPPING_NAMES.get(model.model_type)
    if isinstance(base, (list, tuple)):
        names.extend(base)
    elif base:
        names.append(str(base))
    for name in names:
        try:
            cls = getattr(transformers, name)
        except Exception:
            continue
        # the sub-models that receive the request decide too (5.x composites): the class's own flags are not enough
        found = composite_support(cls, model.model_type, transformers.__version__)
        return found or class_support(cls, transformers.__version__)
    return None


def _key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def nearest_table(knowledge: Knowledge, version: str | None) -> AttentionSupportTable | None:
    """The newest shipped table at or below `version` (or the oldest one, when every table is newer)."""
    tables = sorted(knowledge.shipped_attention_tables(), key=lambda t: _key(t.transformers))
    if not tables:
        return None
    if version is None:
        return tables[-1]
    older = [t for t in tables if _key(t.transformers) <= _key(version)]
    return older[-1] if older else tables[0]


def attention_support(model: ModelSpec, env: Environment, knowledge: Knowledge) -> tuple[dict[str, bool], str]:
    """(support per implementation, where that answer came from); empty when the architecture is unknown."""
    support, source = _declared(model, env, knowledge)
    if support and support.get("flash_attention_4") is None:  # not stored: FA2's flag from the first release accepting it
        target = env.version_of("transformers") or installed_version()
        first = knowledge.releases.first_accepting("flash_attention_4")
        since = Version(first.first) if first is not None else Version("5.4")
        support["flash_attention_4"] = bool(support.get("flash_attention_2")) and _key(target or "0") >= since
    return support, source


def _declared(model: ModelSpec, env: Environment, knowledge: Knowledge) -> tuple[dict[str, bool], str]:
    target = env.version_of("transformers")
    here = installed_version()
    if here is not None and (target is None or _key(target) == _key(here)):
        found = _from_installed(model, knowledge.cache)
        if found is not None:
            return _with_sub_models(found, model, knowledge, here), f"transformers {here} (installed)"
    history = _from_history(model, target)
    if history is not None:
        return history
    newest = load_history().releases[-1]
    if target is not None and is_newer(target, newest):
        return {}, (f"unknown for transformers {target} (newer than the shipped tables, {newest}, and not installed "
                    "here)")
    table = nearest_table(knowledge, target)
    if table is not None:
        for row in table.architectures:
            if row.model_type == model.model_type:
                support = row.model_dump(exclude={"model_type", "class_name"})
                return support, f"the shipped table for transformers {table.transformers}"
        return {}, f"the shipped table for transformers {table.transformers}"
    return {}, "no attention-support table"


def _with_sub_models(found: dict[str, bool], model: ModelSpec, knowledge: Knowledge, here: str) -> dict[str, bool]:
    """The class's own flags, and-ed with the shipped table of this very release: that table also counts the
    sub-models that receive the request (rt_detr's backbone, vibevoice's tokenizers), which one class cannot."""
    table = nearest_table(knowledge, here)
    if table is None or _key(table.transformers) != _key(here):
        return found
    row = next((r for r in table.architectures if r.model_type == model.model_type), None)
    if row is None:
        return found
    shipped = row.model_dump(exclude={"model_type", "class_name"})
    return {impl: ok and bool(shipped.get(impl, True)) for impl, ok in found.items()}


def _from_history(model: ModelSpec, target: str | None) -> tuple[dict[str, bool], str] | None:
    """The per-release history table (data/attention_history.json), when present and covering `target`."""
    if target is None:
        return None
    try:
        history = load_history()
        at = history.support_at(target)
    except Exception:
        return None
    row = at.architectures.get(model.model_type) if hasattr(at, "architectures") else None
    if row is None:
        return None
    return dict(row), f"transformers {at.release} (shipped history table)"


def _release_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        raise UsageError(f"not a transformers version: {version!r}") from None


def table_for(
    version: str | None, knowledge: Knowledge, *, refresh: bool = False
) -> tuple[AttentionSupportTable, str]:
    """Attention support of one release and where it came from: the shipped table for exactly that release,
    the installed classes (exact; read once in two children, then cached), or the per-release history."""
    here = installed_version()
    wanted = version or here
    if wanted is not None and not refresh:
        table = nearest_table(knowledge, wanted)
        if table is not None and _release_key(table.transformers) == _release_key(wanted):
            return table, f"data/attention/transformers-{table.transformers}.json ({table.generated_by})"
    inst = installed()
    if inst is not None and (version is None or _release_key(version) == _release_key(inst.version)):
        if refresh:
            from advisor.knowledge.introspect import read_attention_support

            return AttentionSupportTable.model_validate(read_attention_support()), f"transformers {here} (installed)"
        derived = attention_table(inst, cache=knowledge.cache)
        if derived is not None:
            newer = is_newer(inst.version, load_history().releases[-1])
            how = "newer than the shipped tables" if newer else "no shipped table for it"
            return (AttentionSupportTable.model_validate(derived),
                    f"transformers {inst.version}: read from the installed package ({how})")
    history = load_history()
    wanted = wanted or history.releases[-1]
    if _release_key(wanted) > _release_key(history.releases[-1]):  # never answer a future release with an old one
        raise UsageError(f"transformers {wanted} is newer than any stored release (newest: {history.releases[-1]}); "
                         "install it and run without --transformers, or name a stored release")
    try:
        at = history.support_at(wanted)
    except ValueError as exc:
        raise UsageError(f"{exc}; stored releases: {history.releases[0]} to {history.releases[-1]}") from None
    if at.match == "older_release":  # every minor from the first stored one on is stored: this one was never released
        raise UsageError(f"transformers {wanted} is not a release (no {Version(wanted).major}.{Version(wanted).minor}.x "
                         f"exists); name one such as {at.release}, or see `advisor matrix --history MODEL_TYPE`")
    where = f"data/attention_history.json: release {at.release} ({at.match.replace('_', ' ')} for {wanted})"
    return history.table_at(wanted), where
