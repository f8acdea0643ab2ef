"""The measurement store: what `advisor tune` timed on this GPU, and the rows shipped in data/measurements/.

Local measurements live in SQLite in the user cache directory (platformdirs; `ADVISOR_CACHE_DIR` overrides the
folder). A row's key is everything that can change a timing: the GPU and its compute capability, the driver,
torch, transformers and attention-kernel versions, the model type with its shape, the workload and the
candidate. A row measured under other versions no longer matches; lookups return it separately so reports can
say it was ignored. Concurrent writers are safe (WAL journal, busy timeout, one transaction per write); a
corrupt file is moved aside and rebuilt, and the reason is kept in `notes`, never raised.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from advisor.facts import Environment, TorchInfo, known
from advisor.model import ModelSpec

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
    "shape_signature",
    "shipped_measurements",
    "versions_of",
]

CACHE_ENV = "ADVISOR_CACHE_DIR"  # shared with the analysis cache of issue 14: one folder, separate files
STORE_NAME = "measurements.sqlite"
_BUSY_MS = 30_000
_VERSION_FIELDS = ("driver", "torch", "transformers", "attention_kernels")


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


class Lookup(BaseModel):
    """Rows for one GPU, model shape and workload: those that match the versions, and those ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matches: list[Measurement]
    ignored: list[Measurement]
    notes: list[str] = []


def cache_dir() -> Path:
    """`ADVISOR_CACHE_DIR` if set, else the platform's user cache folder for the advisor."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("inference-advisor", appauthor=False))


def shape_signature(model: ModelSpec) -> str:
    """hidden, heads, KV heads, head_dim, layers: what a kernel's speed depends on besides the model type."""
    return (f"h{model.hidden_size}-a{model.num_attention_heads}-kv{model.num_key_value_heads}"
            f"-d{model.head_dim}-l{model.num_layers}")


def _attention_kernels(env: Environment) -> str:
    """Versions of the optional attention kernels (their absence is a version too)."""
    parts = []
    for dist in ("flash-attn", "flash-attn-3", "kernels"):
        lib = env.library(dist)
        parts.append(f"{dist}={lib.version if lib.installed and lib.version else 'none'}")
    return ";".join(parts)


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


class MeasurementStore:
    """The SQLite file of local measurements; every failure becomes a note, never an exception."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else cache_dir() / STORE_NAME
        self.notes: list[str] = []

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.is_file():
            return None
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            conn.execute("SELECT count(*) FROM measurements").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        """A connection, rebuilding a corrupt file once; None (with a note) when the store is unusable."""
        try:
            return self._connect(create=create)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                self.notes.append(f"measurement store {self.path} is locked by another process; not used this time")
                return None
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}-{os.getpid()}")
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    Path(str(self.path) + suffix).unlink(missing_ok=True)
            except OSError as move:
                self.notes.append(f"measurement store {self.path} is corrupt ({exc}) and could not be moved "
                                  f"aside ({move.strerror}); not used")
                return None
            self.notes.append(f"measurement store {self.path} was corrupt ({exc}); moved to {aside.name} and "
                              "rebuilt empty")
            try:
                return self._connect(create=True)
            except (sqlite3.Error, OSError) as again:
                self.notes.append(f"measurement store {self.path} could not be rebuilt: {again}")
                return None
        except OSError as exc:
            self.notes.append(f"measurement store {self.path} cannot be opened ({exc.strerror or exc}); not used")
            return None

    def record(self, rows: Iterable[Measurement]) -> int:
        """Insert or replace rows in one transaction; returns how many were written (0 if the store is unusable)."""
        rows = list(rows)
        conn = self._open(create=True)
        if conn is None:
            return 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT OR REPLACE INTO measurements ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [(*(getattr(r.key, c) for c in _KEY_COLUMNS), r.metric, r.value, r.spread, r.measured_at, r.run,
                  r.layers) for r in rows],
            )
            conn.execute("COMMIT")
            return len(rows)
        except sqlite3.Error as exc:
            self.notes.append(f"measurement store {self.path}: could not record ({exc})")
            return 0
        finally:
            conn.close()

    def rows(self, *, gpu: str, compute_capability: str, model_type: str, shape: str,
             workload: str | None = None) -> list[Measurement]:
        """Every stored row for this GPU and model shape (all versions)."""
        conn = self._open(create=False)
        if conn is None:
            return []
        try:
            query = ("SELECT * FROM measurements WHERE gpu=? AND compute_capability=? AND model_type=? AND shape=?"
                     + (" AND workload=?" if workload is not None else ""))
            params = [gpu, compute_capability, model_type, shape] + ([workload] if workload is not None else [])
            cursor = conn.execute(query, params)
            names = [d[0] for d in cursor.description]
            out = []
            for values in cursor.fetchall():
                row = dict(zip(names, values))
                key = MeasurementKey(**{c: row[c] for c in _KEY_COLUMNS})
                out.append(Measurement(key=key, metric=row["metric"], value=row["value"], spread=row["spread"],
                                       measured_at=row["measured_at"], run=row["run"], layers=row["layers"]))
            return out
        except (sqlite3.Error, ValidationError) as exc:
            self.notes.append(f"measurement store {self.path}: could not read ({exc}); not used")
            return []
        finally:
            conn.close()

    def lookup(self, versions: Versions, model: ModelSpec, workload: str) -> Lookup:
        """Rows for this GPU, shape and workload, split into those measured under these versions and the rest."""
        rows = self.rows(gpu=versions.gpu, compute_capability=versions.compute_capability,
                         model_type=model.model_type, shape=shape_signature(model), workload=workload)
        matches = [r for r in rows if all(getattr(r.key, f) == getattr(versions, f) for f in _VERSION_FIELDS)]
        ignored = [r for r in rows if r not in matches]
        return Lookup(matches=matches, ignored=ignored, notes=list(self.notes))


def stale_reason(row: Measurement, versions: Versions) -> str:
    """Which versions changed since `row` was measured, in words."""
    changed = [f"{f} {getattr(row.key, f)} (now {getattr(versions, f)})" for f in _VERSION_FIELDS
               if getattr(row.key, f) != getattr(versions, f)]
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
