"""The measurement store: what `advisor tune` timed on this GPU, and the rows shipped in data/measurements/.

Local measurements live in SQLite in the user cache directory (platformdirs; `ADVISOR_CACHE_DIR` overrides the
folder). A row's key is everything that can change a timing: the GPU and its compute capability, the driver,
torch, transformers and attention-kernel versions, the model type with its shape, the workload and the
candidate. A row measured under other versions no longer matches; lookups return it separately so reports can
say it was ignored. Concurrent writers are safe (WAL journal, busy timeout, one transaction per write); a
corrupt file is moved aside and rebuilt, and the reason is kept in `notes`, never raised.

Issue 25: the file is untrusted content in the cache folder (`advisor/io/cache_root.py`). The store and its -wal,
-shm and -journal files are used only when each is a regular file with one link, never a symlink (SQLite opens
by name and would follow one); lookups open it read-only (`mode=ro`, `query_only`, `trusted_schema=OFF`) and
never create a table, so a read-only `recommend` writes nothing; every row passes `stored_row.StoredRow` or is
skipped; the store is at most STORE_MAX_BYTES. Only SQLite's own verdict of corruption moves a file aside, and
only in the advisor's own folder; a full disk or a read-only file system during a write keeps the store as it
was and says so in `notes`. Nothing is written into a cache folder holding files the advisor did not create.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from advisor import env as envvars
from advisor.candidate import ATTENTION_PACKAGES
from advisor.facts import Environment, TorchInfo, known
from advisor.knowledge.stored_row import is_busy, is_corrupt, row_problem

__all__ = [
    "CACHE_ENV",
    "STORE_NAME",
    "Lookup",
    "Measurement",
    "MeasurementKey",
    "MeasurementStore",
    "Versions",
    "cache_dir",
    "depth_checks",
    "kernel_of",
    "kernel_versions",
    "kernels_match",
    "shipped_measurements",
    "versions_of",
]

CACHE_ENV = envvars.CACHE_DIR  # shared with the analysis cache of issue 14: one folder, separate files
STORE_NAME = "measurements.sqlite"
STORE_MAX_BYTES = 256 * 1024 * 1024  # a row is ~300 bytes: close to a million measurements
_ROW_LIMIT = 10_000  # rows one lookup reads (one GPU, one model shape)
_SIDE_FILES = ("-wal", "-shm", "-journal")
_BUSY_MS = 30_000
_EXACT_FIELDS = ("driver", "torch", "transformers")  # attention_kernels: kernels_match decides


class Versions(BaseModel):
    """The machine half of a key: a change in any of these makes an old timing meaningless."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: str
    compute_capability: str
    driver: str
    torch: str
    transformers: str
    attention_kernels: str


class MeasurementKey(Versions):
    model_type: str
    shape: str
    workload: str
    candidate: str


class Measurement(BaseModel):
    """One candidate's median throughput (higher is better) under one key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: MeasurementKey
    metric: str
    value: float
    spread: float | None = None  # (max - min) / max over the repeats
    measured_at: str  # ISO date
    run: str  # what produced it: a tune run id or the shipped script's run
    layers: int | None = None  # layers actually run when depth was truncated
    source: Literal["local", "shipped"] = "local"
    # the first forward of a fresh process at this shape (flex_attention's compile, FA4's JIT): never in `value`
    first_call_seconds: float | None = None


class Lookup(BaseModel):
    """Rows for one GPU, model shape and workload: those that match the versions, and those ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matches: list[Measurement]
    ignored: list[Measurement]
    notes: list[str] = []


def cache_dir() -> Path:
    """The cache folder, resolved in one place (advisor/io/cache_root.py)."""
    from advisor.io.cache_root import cache_dir as root

    return root()


_KERNEL_DISTS = ("flash-attn", "flash-attn-3", "flash-attn-4", "kernels")


def _attention_kernels(env: Environment) -> str:
    """Versions of the optional attention kernels (their absence is a version too)."""
    parts = []
    for dist in _KERNEL_DISTS:
        lib = env.library(dist)
        parts.append(f"{dist}={lib.version if lib.installed and lib.version else 'none'}")
    return ";".join(parts)


def kernel_of(candidate: str) -> str | None:
    """The optional package whose kernel a candidate label's attention runs (None: torch's own)."""
    attn = candidate.split(" / ", 1)[0].removeprefix("paged|")
    if "/" in attn:  # a Hub kernel repository, fetched by `kernels`
        return "kernels"
    return ATTENTION_PACKAGES.get(attn)  # sdpa, eager, flex_attention: torch's own kernels


def kernel_versions(text: str) -> dict[str, str]:
    """'flash-attn=none;flash-attn-4=4.0.0b36' -> {dist: version}; a package a row did not record is absent."""
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def kernels_match(row: MeasurementKey, versions: Versions) -> bool:
    """Whether a row's attention-kernel versions hold for `versions`: only the package the row's candidate runs
    counts. A flash_attention_4 row needs the same flash-attn-4 version (never 'none', never unrecorded: rows
    written before flash-attn-4 was recorded lack it); an sdpa, eager or flex_attention row matches whatever
    optional packages are installed, so rows measured without flash-attn-4 keep matching once it is installed."""
    dist = kernel_of(row.candidate)
    if dist is None:
        return True
    mine = kernel_versions(row.attention_kernels).get(dist, "none")
    return mine != "none" and mine == kernel_versions(versions.attention_kernels).get(dist, "none")


def _same_versions(row: MeasurementKey, versions: Versions) -> bool:
    return all(getattr(row, f) == getattr(versions, f) for f in _EXACT_FIELDS) and kernels_match(row, versions)


def versions_of(env: Environment) -> Versions:
    """The machine half of the key for the first GPU of `env` (or the CPU)."""
    gpus = env.gpu_list
    gpu = gpus[0] if gpus else None
    cc = known(gpu.compute_capability) if gpu is not None else None
    torch = env.torch.version if isinstance(env.torch, TorchInfo) else "none"
    return Versions(
        gpu=gpu.name if gpu is not None else "CPU",
        compute_capability=str(cc) if cc is not None else "none",
        driver=str(known(env.driver.driver_version) or "unknown"),
        torch=torch,
        transformers=env.version_of("transformers") or "none",
        attention_kernels=_attention_kernels(env),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
  gpu TEXT NOT NULL, compute_capability TEXT NOT NULL, driver TEXT NOT NULL, torch TEXT NOT NULL,
  transformers TEXT NOT NULL, attention_kernels TEXT NOT NULL, model_type TEXT NOT NULL, shape TEXT NOT NULL,
  workload TEXT NOT NULL, candidate TEXT NOT NULL,
  metric TEXT NOT NULL, value REAL NOT NULL, spread REAL, measured_at TEXT NOT NULL, run TEXT NOT NULL,
  layers INTEGER,
  PRIMARY KEY (gpu, compute_capability, driver, torch, transformers, attention_kernels, model_type, shape,
               workload, candidate)
)
"""
_KEY_COLUMNS = tuple(MeasurementKey.model_fields)
_COLUMNS = (*_KEY_COLUMNS, "metric", "value", "spread", "measured_at", "run", "layers")


class _Refused(Exception):
    """The store's path cannot be used safely (a symlink, another file type, a foreign folder)."""


class MeasurementStore:
    """The SQLite file of local measurements; every failure becomes a note, never an exception."""

    def __init__(self, path: Path | None = None) -> None:
        self._in_cache = path is None  # the default file, in the cache folder: its rules apply
        self.path = path if path is not None else cache_dir() / STORE_NAME
        self.notes: list[str] = []

    def _unsafe(self) -> str | None:
        """Why the file or one beside it cannot be used (SQLite would open them by name, following links)."""
        for path in (self.path, *(Path(str(self.path) + suffix) for suffix in _SIDE_FILES)):
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):  # absent; a missing folder is reported on open
                continue
            except OSError as exc:
                return f"{path.name} cannot be examined ({exc.strerror})"
            if stat.S_ISLNK(st.st_mode):
                return f"{path.name} is a symbolic link"
            if not stat.S_ISREG(st.st_mode):
                return f"{path.name} is not a regular file"
            if st.st_nlink > 1:
                return f"{path.name} has other hard links"
            if path == self.path and st.st_size > STORE_MAX_BYTES:
                return f"it is {st.st_size} bytes, more than the {STORE_MAX_BYTES // (1024 * 1024)} MiB limit"
        return None

    def _folder_owned(self, *, create: bool) -> bool | None:
        """For the cache folder's store: whether the advisor may write there (None: no usable folder)."""
        from advisor.io import cache_root

        with cache_root.open_root(create=create, path=self.path.parent) as root:
            return None if root is None else root.owned

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        exists = os.path.lexists(self.path)
        if not create and not exists:
            return None
        if self._in_cache:
            owned = self._folder_owned(create=create)
            if owned is None:
                if not create:
                    return None
                raise _Refused(f"its folder {self.path.parent} is not a folder or cannot be created")
            if create and not owned:
                raise _Refused(f"its folder {self.path.parent} holds files the advisor did not create, so nothing is "
                               f"written there; point {CACHE_ENV} at an empty or new folder")
        problem = self._unsafe()
        if problem is not None:
            raise _Refused(problem)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        else:  # read-only: no journal mode change, no table created, nothing written through any name
            uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            conn.execute("PRAGMA trusted_schema=OFF")  # no function with side effects from a planted schema
            conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            if create:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
            else:
                conn.execute("PRAGMA query_only=ON")
                kind = conn.execute("SELECT type FROM sqlite_master WHERE name='measurements'").fetchone()
                if kind is None or kind[0] != "table":
                    conn.close()
                    return None  # another database, or an empty file: nothing of ours to read
            conn.execute("SELECT count(*) FROM measurements").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _may_move_aside(self) -> bool:
        """A corrupt file is moved aside only where the advisor owns the folder (or was given the path)."""
        return not self._in_cache or bool(self._folder_owned(create=False))

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        """A connection, rebuilding a corrupt file once; None (with a note) when the store is unusable."""
        try:
            return self._connect(create=create)
        except _Refused as exc:
            self.notes.append(f"measurement store {self.path}: {exc}; not used (never read or written through)")
            return None
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                self.notes.append(f"measurement store {self.path} is locked by another process; not used this time")
                return None
            if not is_corrupt(exc):
                verb = "written" if create else "read"
                self.notes.append(f"measurement store {self.path} cannot be {verb} ({exc}); it is kept as it was "
                                  "and not used this time")
                return None
            if not self._may_move_aside():
                self.notes.append(f"measurement store {self.path} is corrupt ({exc}); not used (its folder holds "
                                  "files the advisor did not create, so it is left as it is)")
                return None
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}-{os.getpid()}")
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    side = Path(str(self.path) + suffix)
                    if os.path.lexists(side) and stat.S_ISREG(os.lstat(side).st_mode):
                        side.unlink()
            except OSError as move:
                self.notes.append(f"measurement store {self.path} is corrupt ({exc}) and could not be moved "
                                  f"aside ({move.strerror}); not used")
                return None
            self.notes.append(f"measurement store {self.path} was corrupt ({exc}); moved to {aside.name} and "
                              "rebuilt empty")
            try:
                return self._connect(create=True)
            except (sqlite3.Error, OSError, _Refused) as again:
                self.notes.append(f"measurement store {self.path} could not be rebuilt: {again}")
                return None
        except OSError as exc:
            self.notes.append(f"measurement store {self.path} cannot be opened ({exc.strerror or exc}); not used")
            return None

    def record(self, rows: Iterable[Measurement]) -> int:
        """Insert or replace rows in one transaction; returns how many were written (0 if the store is unusable)."""
        values = []
        for r in rows:
            row = dict(zip(_COLUMNS, (*(getattr(r.key, c) for c in _KEY_COLUMNS), r.metric, r.value, r.spread,
                                      r.measured_at, r.run, r.layers)))
            problem = row_problem(row)
            if problem is not None:
                self.notes.append(f"measurement of {r.key.candidate!r} not recorded: {problem}")
                continue
            values.append(tuple(row.values()))
        if not values:
            return 0
        conn = self._open(create=True)
        if conn is None:
            return 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT OR REPLACE INTO measurements ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                values,
            )
            conn.execute("COMMIT")
            return len(values)
        except sqlite3.Error as exc:
            self.notes.append(f"measurement store {self.path}: could not record ({exc}); the store is kept as it "
                              "was, nothing recorded this time")
            return 0
        finally:
            conn.close()

    def rows(self, *, gpu: str, compute_capability: str, model_type: str, shape: str,
             workload: str | None = None) -> list[Measurement]:
        """Every stored row for this GPU and model shape (all versions) that is within bounds."""
        conn = self._open(create=False)
        if conn is None:
            return []
        try:
            query = ("SELECT * FROM measurements WHERE gpu=? AND compute_capability=? AND model_type=? AND shape=?"
                     + (" AND workload=?" if workload is not None else "") + f" LIMIT {_ROW_LIMIT}")
            params = [gpu, compute_capability, model_type, shape] + ([workload] if workload is not None else [])
            cursor = conn.execute(query, params)
            names = [d[0] for d in cursor.description]
            out, skipped, first = [], 0, ""
            for values in cursor.fetchall():
                row = dict(zip(names, values))
                problem = row_problem({c: row.get(c) for c in _COLUMNS})
                if problem is not None:
                    skipped, first = skipped + 1, first or problem
                    continue
                key = MeasurementKey(**{c: row[c] for c in _KEY_COLUMNS})
                out.append(Measurement(key=key, metric=row["metric"], value=row["value"], spread=row["spread"],
                                       measured_at=row["measured_at"], run=row["run"], layers=row["layers"]))
            if skipped:
                self.notes.append(f"measurement store {self.path}: ignored {skipped} row(s) out of bounds "
                                  f"(first: {first})")
            return out
        except (sqlite3.Error, ValidationError) as exc:
            self.notes.append(f"measurement store {self.path}: could not read ({exc}); not used")
            return []
        finally:
            conn.close()

    def lookup(self, versions: Versions, model_type: str, shape: str, workload: str) -> Lookup:
        """Rows for this GPU, model type, shape (`advisor.model.spec.shape_signature`) and workload, split into those
        measured under these versions and the rest."""
        rows = self.rows(gpu=versions.gpu, compute_capability=versions.compute_capability,
                         model_type=model_type, shape=shape, workload=workload)
        matches = [r for r in rows if _same_versions(r.key, versions)]
        ignored = [r for r in rows if r not in matches]
        return Lookup(matches=matches, ignored=ignored, notes=list(self.notes))


def stale_reason(row: Measurement, versions: Versions) -> str:
    """Which versions changed since `row` was measured, in words."""
    changed = [f"{f} {getattr(row.key, f)} (now {getattr(versions, f)})" for f in _EXACT_FIELDS
               if getattr(row.key, f) != getattr(versions, f)]
    if not kernels_match(row.key, versions):
        dist = kernel_of(row.key.candidate)
        have = kernel_versions(versions.attention_kernels).get(dist or "", "none")
        changed.append(f"{dist} {kernel_versions(row.key.attention_kernels).get(dist or '', 'none')} (now {have})")
    return "measured with " + ", ".join(changed)


def _shipped_files(root: Path | None) -> list[Path]:
    if root is None:
        from advisor.knowledge import data_dir

        root = data_dir() / "measurements"
    return sorted(p for p in root.glob("*.json") if p.name != "quantization.json") if root.is_dir() else []


def _load_shipped(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{path}: not a JSON object")
    return data


def shipped_measurements(root: Path | None = None) -> list[Measurement]:
    """The rows of data/measurements/*.json (written by benchmarks/h100_measure.py), marked `shipped`."""
    out: list[Measurement] = []
    for path in _shipped_files(root):
        data = _load_shipped(path)
        rows = data.get("rows", [])
        assert isinstance(rows, list)
        for row in rows:
            out.append(Measurement.model_validate({**row, "source": "shipped"}))
    return out


def depth_checks(root: Path | None = None) -> dict[str, bool]:
    """model_type -> whether a truncated-depth run ranked the candidates as the full depth did (on the H100)."""
    out: dict[str, bool] = {}
    for path in _shipped_files(root):
        checks = _load_shipped(path).get("depth_checks", [])
        assert isinstance(checks, list)
        for check in checks:
            kept = bool(check.get("same_ranking"))
            out[check["model_type"]] = out.get(check["model_type"], True) and kept
    return out


def same_generation(a: Versions | MeasurementKey, b: Versions | MeasurementKey) -> bool:
    """Same compute capability: same SMs, same kernels (an H100 PCIe and SXM differ in clocks, not in code)."""
    return a.compute_capability == b.compute_capability and a.compute_capability != "none"


def pick(rows: Sequence[Measurement], versions: Versions) -> tuple[list[Measurement], str]:
    """Shipped rows for this GPU by name, else for its generation; and how they relate to it."""
    by_name = [r for r in rows if r.key.gpu == versions.gpu]
    if by_name:
        return by_name, "same GPU"
    gen = [r for r in rows if same_generation(r.key, versions)]
    return gen, f"same GPU generation (sm_{versions.compute_capability.replace('.', '')})" if gen else ""
