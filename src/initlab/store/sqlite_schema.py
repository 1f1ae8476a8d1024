"""SQLite store layout: the DDL of schema version 2, column lists, record <-> row conversions
and per-record checksums (used by ``initlab.store.sqlite``; see docs/store.md)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from typing import Any

from initlab.store.records import ExperimentRecord, RunRecord, StoredEpoch, canonical_json

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


def _run_row(r: RunRecord) -> tuple[Any, ...]:
    return (
        r.experiment_id,
        r.scheme,
        r.seed,
        r.status,
        _real(r.test_acc),
        _real(r.test_loss),
        _real(r.train_loss),
        _real(r.train_acc),
        r.diverged_step,
        _real(r.wall_time),
        canonical_json(r.extra, allow_nan=True),
    )


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    eid, scheme, seed, status, tea, tel, trl, tra, dstep, wall, extra = row
    return RunRecord(
        experiment_id=eid,
        scheme=scheme,
        seed=seed,
        status=status,
        test_acc=_metric(tea),
        test_loss=_metric(tel),
        train_loss=_metric(trl),
        train_acc=_metric(tra),
        diverged_step=dstep,
        wall_time=_metric(wall),
        extra=json.loads(extra),
    )


def _epoch_row(e: StoredEpoch) -> tuple[Any, ...]:
    return (
        e.experiment_id,
        e.scheme,
        e.seed,
        e.epoch,
        e.step,
        _real(e.train_loss),
        _real(e.train_acc),
        _real(e.test_loss),
        _real(e.test_acc),
        _real(e.wall_time),
    )


def _epoch_record(row: tuple[Any, ...]) -> StoredEpoch:
    eid, scheme, seed, epoch, step, trl, tra, tel, tea, wall = row
    return StoredEpoch(
        experiment_id=eid,
        scheme=scheme,
        seed=seed,
        epoch=epoch,
        step=step,
        train_loss=_metric(trl),
        train_acc=_metric(tra),
        test_loss=_metric(tel),
        test_acc=_metric(tea),
        wall_time=_metric(wall),
    )


def _experiment_record(row: tuple[Any, ...]) -> ExperimentRecord:
    eid, name, config, digest, created, status, v_initlab, v_torch, v_python, extra = row
    return ExperimentRecord(
        id=eid,
        name=name,
        config=json.loads(config),
        config_hash=digest,
        created_at=created,
        status=status,
        initlab_version=v_initlab,
        torch_version=v_torch,
        python_version=v_python,
        extra=json.loads(extra),
    )


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's errors for a damaged file (not a lock, a constraint or a closed handle)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return False
    if isinstance(exc, sqlite3.OperationalError):
        return "decode" in str(exc) or "malformed" in str(exc)
    return True
