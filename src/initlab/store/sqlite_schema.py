"""SQLite store layout: the DDL of schema version 2, column lists, record <-> row conversions
and per-record checksums (used by ``initlab.store.sqlite``; see docs/store.md)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from typing import Any, TypeVar

from initlab.store.records import ExperimentRecord, RunRecord, StoredEpoch, canonical_json

_R = TypeVar("_R", ExperimentRecord, RunRecord, StoredEpoch)

_EXPERIMENTS_DDL = """CREATE TABLE IF NOT EXISTS {name} (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT,
        config_json TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
        initlab_version TEXT NOT NULL,
        torch_version TEXT NOT NULL,
        python_version TEXT NOT NULL,
        extra_json TEXT NOT NULL DEFAULT '{{}}',
        checksum TEXT
    )"""

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _EXPERIMENTS_DDL.format(name="experiments"),
    "CREATE INDEX IF NOT EXISTS experiments_by_hash ON experiments (config_hash, seq)",
    """CREATE TABLE IF NOT EXISTS runs (
        experiment_id TEXT NOT NULL REFERENCES experiments (id),
        scheme TEXT NOT NULL,
        seed INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'diverged')),
        test_acc REAL,
        test_loss REAL,
        train_loss REAL,
        train_acc REAL,
        diverged_step INTEGER,
        wall_time REAL,
        extra_json TEXT NOT NULL,
        checksum TEXT,
        PRIMARY KEY (experiment_id, scheme, seed)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS epochs (
        experiment_id TEXT NOT NULL,
        scheme TEXT NOT NULL,
        seed INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        step INTEGER NOT NULL,
        train_loss REAL,
        train_acc REAL,
        test_loss REAL,
        test_acc REAL,
        wall_time REAL,
        checksum TEXT,
        PRIMARY KEY (experiment_id, scheme, seed, epoch),
        FOREIGN KEY (experiment_id, scheme, seed) REFERENCES runs (experiment_id, scheme, seed)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        experiment_id TEXT NOT NULL REFERENCES experiments (id),
        key TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        blob BLOB NOT NULL,
        saved_at TEXT NOT NULL,
        checksum TEXT,
        PRIMARY KEY (experiment_id, key)
    )""",
    *(
        f"""CREATE TRIGGER IF NOT EXISTS {table}_{op.lower()}_refused BEFORE {op} ON {table}
        BEGIN SELECT RAISE(ABORT, 'initlab store: committed {table} records never change'); END"""
        for table in ("runs", "epochs")
        for op in ("UPDATE", "DELETE")
    ),
]

_RUN_COLUMNS = (
    "experiment_id, scheme, seed, status, test_acc, test_loss, train_loss, train_acc, "
    "diverged_step, wall_time, extra_json"
)
_EPOCH_COLUMNS = "experiment_id, scheme, seed, epoch, step, train_loss, train_acc, test_loss, test_acc, wall_time"
_EXPERIMENT_COLUMNS = (
    "id, name, config_json, config_hash, created_at, status, initlab_version, torch_version, python_version, extra_json"
)


def _digest(values: tuple[Any, ...]) -> str:
    """A record's checksum: sha256 of the ``repr`` of its stored values (floats round-trip
    exactly through ``repr``), 16 hex digits. Written with every record and verified on every
    read, so a damaged value is an error, never a wrong number."""
    return hashlib.sha256(repr(tuple(values)).encode()).hexdigest()[:16]


def _blob_digest(experiment_id: str, key: str, epoch: int, blob: bytes) -> str:
    return _digest((experiment_id, key, epoch, hashlib.sha256(blob).hexdigest()))


def _real(value: float) -> float | None:
    return None if math.isnan(value) else value


def _metric(value: float | None) -> float:
    return math.nan if value is None else value


_METRIC_COLUMNS = frozenset({"test_acc", "test_loss", "train_loss", "train_acc", "wall_time"})


def _columns(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


def _encode(record: Any, columns: str) -> tuple[Any, ...]:
    """A record's stored values, in ``columns`` order: NaN metrics as NULL, ``*_json`` columns as
    canonical JSON of the field without that suffix."""
    values: list[Any] = []
    for column in _columns(columns):
        if column.endswith("_json"):
            values.append(canonical_json(getattr(record, column[: -len("_json")]), allow_nan=True))
        elif column in _METRIC_COLUMNS:
            values.append(_real(getattr(record, column)))
        else:
            values.append(getattr(record, column))
    return tuple(values)


def _decode(record_type: type[_R], columns: str, row: tuple[Any, ...]) -> _R:
    """Inverse of ``_encode``: NULL metrics are NaN again, JSON columns parsed."""
    fields: dict[str, Any] = {}
    for column, value in zip(_columns(columns), row, strict=True):
        if column.endswith("_json"):
            fields[column[: -len("_json")]] = json.loads(value)
        elif column in _METRIC_COLUMNS:
            fields[column] = _metric(value)
        else:
            fields[column] = value
    return record_type(**fields)


def _run_row(r: RunRecord) -> tuple[Any, ...]:
    return _encode(r, _RUN_COLUMNS)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return _decode(RunRecord, _RUN_COLUMNS, row)


def _epoch_row(e: StoredEpoch) -> tuple[Any, ...]:
    return _encode(e, _EPOCH_COLUMNS)


def _epoch_record(row: tuple[Any, ...]) -> StoredEpoch:
    return _decode(StoredEpoch, _EPOCH_COLUMNS, row)


def _experiment_record(row: tuple[Any, ...]) -> ExperimentRecord:
    return _decode(ExperimentRecord, _EXPERIMENT_COLUMNS, row)


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's errors for a damaged file (not a lock, a constraint or a closed handle)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return False
    if isinstance(exc, sqlite3.OperationalError):
        return "decode" in str(exc) or "malformed" in str(exc)
    return True
