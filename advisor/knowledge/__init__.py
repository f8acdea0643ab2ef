"""Typed access to the tables in `data/`: loaded once, validated, and never mutated; the measurement store; and
the facts read from an installed or throwaway transformers release (in a child, cached).

May import: the vocabulary modules, `advisor.io` and `advisor.isolation`; never the probe, the model, the rules
or anything above them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from advisor.errors import DataTableError, UnknownGpuError
from advisor.facts import ComputeCapability, DtypeSupport
from advisor.knowledge.loader import DATA_DIR_ENV, data_dir, load_table
from advisor.knowledge.releases import ReleaseConstraints, load_release_constraints, release_constraint_rows
from advisor.knowledge.schema import (
    AttentionRequirement,
    AttentionRequirementTable,
    AttentionSupportTable,
    CapabilityTable,
    GpuRow,
    GpuTable,
    LibraryTable,
    ShippedModel,
    VersionConstraint,
)

__all__ = ["DATA_DIR_ENV", "Knowledge", "data_dir", "load_knowledge", "version_matches"]


def version_matches(version: str | None, specifier: str | None) -> bool:
    """True when `version` satisfies the PEP 440 `specifier` (pre-releases count)."""
    if specifier is None:
        return True
    if version is None:
        return False
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass(frozen=True)
class Knowledge:
    root: Path
    gpus: GpuTable
    capabilities: CapabilityTable
    attention: AttentionRequirementTable
    libraries: LibraryTable
    cache: bool = True  # False: --no-cache; the rooms below the request read the user's analysis cache by it

    # -- GPUs -------------------------------------------------------------
    def gpu(self, name: str) -> GpuRow:
        """A GPU by table name or alias, case- and punctuation-insensitive."""
        wanted = _norm(name)
        for row in self.gpus.rows:
            if wanted in {_norm(row.name), *(_norm(a) for a in row.aliases)}:
                return row
        raise UnknownGpuError(name, [row.name for row in self.gpus.rows])

    # -- dtypes -------------------------------------------------------------
    def dtype_support(self, cc: ComputeCapability | None = None, gfx_arch: str | None = None) -> DtypeSupport:
        """Native dtype support: the highest capability row at or below `cc`."""
        if gfx_arch is not None:
            for amd in self.capabilities.amd:
                if amd.gfx_arch == gfx_arch:
                    return DtypeSupport(
                        tf32=False, fp16=amd.fp16, bf16=amd.bf16, fp8=amd.fp8, int8=amd.int8, source=amd.source
                    )
            return DtypeSupport(fp16=True, source=f"{gfx_arch} is not in the table: assuming fp16 only")
        if cc is None:
            return DtypeSupport(source="CPU: fp32 everywhere; bf16/fp16 run but are slow on CPUs without AMX")
        best = None
        for row in self.capabilities.nvidia:
            if cc >= ComputeCapability.parse(row.min_compute_capability):
                best = row
        if best is None:
            return DtypeSupport(source=f"compute capability {cc} is older than every row of the table")
        return DtypeSupport(
            tf32=best.tf32, fp16=best.fp16, bf16=best.bf16, fp8=best.fp8, int8=best.int8, source=best.source
        )

    def architecture_name(self, cc: ComputeCapability) -> str:
        name = "pre-Pascal"
        for row in self.capabilities.nvidia:
            if cc >= ComputeCapability.parse(row.min_compute_capability):
                name = row.architecture
        return name

    # -- attention ------------------------------------------------------------
    def attention_requirement(self, impl: str) -> AttentionRequirement | None:
        base = self.impl_of(impl)[0]
        return next((row for row in self.attention.rows if row.impl == base), None)

    def impl_of(self, name: str) -> tuple[str, bool]:
        """(implementation, through a Hub kernel): `paged|sdpa` -> ("sdpa", False); a Hub kernel that some release
        uses as a flash fallback (`kernels-community/flash-attn2`) -> ("flash_attention_2", True); another
        `org/repo` -> (name, True); anything else unchanged."""
        name = name.removeprefix("paged|")
        if "/" not in name:
            return name, False
        repo = name.split(":", 1)[0].split("@", 1)[0]
        for run in self.releases.facts["kernel_fallback"]:
            for impl, repos in (run.value or {}).items():
                if repo in repos.values():
                    return impl, True
        return name, True

    @cached_property
    def attention_impls(self) -> tuple[str, ...]:
        return tuple(row.impl for row in self.attention.rows)

    def shipped_attention_tables(self) -> list[AttentionSupportTable]:
        return [
            load_table(path, AttentionSupportTable) for path in sorted((self.root / "attention").glob("transformers-*.json"))
        ]

    # -- libraries ---------------------------------------------------------------
    @cached_property
    def releases(self) -> ReleaseConstraints:
        """Facts read from each transformers release (data/release_constraints.json)."""
        return load_release_constraints(self.root / "release_constraints.json", cache=self.cache)

    @cached_property
    def version_constraints(self) -> tuple[VersionConstraint, ...]:
        """The hand-checked rows of libraries.json plus the per-release minimums generated from transformers."""
        return (*self.libraries.rows, *release_constraint_rows(self.releases))

    def constraints_for(self, library: str, versions: dict[str, str | None]) -> list[VersionConstraint]:
        """Constraints on `library` that apply given the other libraries' versions."""
        return [
            row
            for row in self.version_constraints
            if row.library == library
            and (row.when_library is None or version_matches(versions.get(row.when_library), row.when_specifier))
        ]

    # -- models ------------------------------------------------------------------
    def shipped_model(self, name: str) -> ShippedModel | None:
        wanted = name.strip().lower()
        for model in self.models:
            if wanted == model.hub_id.lower() or wanted in (a.lower() for a in model.aliases):
                return model
        return None

    @cached_property
    def models(self) -> tuple[ShippedModel, ...]:
        return tuple(load_table(path, ShippedModel) for path in sorted((self.root / "models").glob("*.json")))


def _with_release_facts(table: AttentionRequirementTable, root: Path, cache: bool) -> AttentionRequirementTable:
    """Fill each implementation's first transformers release and torch minimum from the generated release facts.

    NOTE: these are version-dependent, so attention_impls.json leaves them null (issue 11); the values here are
    the earliest ones, for display; the rules ask the release facts about the target's own release."""
    rc = load_release_constraints(root / "release_constraints.json", cache=cache)
    torch_fact = {"sdpa": "sdpa_torch_min", "flex_attention": "flex_torch_min"}
    rows = []
    for row in table.rows:
        first = rc.first_accepting(row.impl)
        update: dict[str, object] = {}
        if first is not None and row.impl != "eager":
            update["min_transformers"] = first.first
        if row.impl in torch_fact and (run := rc.first_where(torch_fact[row.impl], bool)) is not None:
            update["min_torch"] = run.value
        rows.append(row.model_copy(update=update))
    return table.model_copy(update={"rows": rows})


@lru_cache(maxsize=4)
def load_knowledge(root: Path | None = None, *, cache: bool = True) -> Knowledge:
    """Load and validate every table once per process; `cache=False` (--no-cache) is carried on the `Knowledge`
    to every room that takes it, which then neither reads nor writes the user's analysis cache."""
    root = root or data_dir()
    gpus = load_table(root / "gpus.json", GpuTable)
    names = [n for row in gpus.rows for n in {_norm(x) for x in (row.name, *row.aliases)}]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataTableError(str(root / "gpus.json"), f"duplicate GPU names: {duplicates}")
    return Knowledge(
        root=root,
        gpus=gpus,
        capabilities=load_table(root / "capabilities.json", CapabilityTable),
        attention=_with_release_facts(load_table(root / "attention_impls.json", AttentionRequirementTable), root, cache),
        libraries=load_table(root / "libraries.json", LibraryTable),
        cache=cache,
    )
