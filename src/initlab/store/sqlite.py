"""The SQLite results store (stdlib ``sqlite3``, WAL mode): one file, one writer, many readers.

WAL lets readers in other threads and processes read a consistent snapshot while the driver
writes, and every write is one ``BEGIN IMMEDIATE`` transaction, so a reader sees a chunk whole
or not at all and a killed writer leaves only whole chunks (SQLite rolls back the unfinished
one on the next open). ``synchronous=FULL``: a committed chunk survives power loss too.

Schema version 2 (see docs/store.md): ``meta`` (application, schema_version), ``experiments``,
``runs``, ``epochs``, ``checkpoints``; version 2 adds the experiment status "failed" and a
``checksum`` per record, verified on every read (a version 1 store is migrated when opened;
its older records have no checksum and are read as before). New stores use ``auto_vacuum = INCREMENTAL`` and
give deleted checkpoints' pages back to the file system after each commit that deletes some;
``compact()`` reclaims an older store's free pages. ``check()`` runs ``PRAGMA quick_check``
so a damaged file gives one clear error before a report reads numbers from it. NaN metrics are stored as NULL (metrics are never None, so
NULL means NaN); +-inf are SQLite REALs. Triggers make ``runs`` and ``epochs`` append-only, so
even raw SQL cannot change a committed record.

The tables and row codecs are in ``initlab.store.sqlite_schema``; recognising, opening in WAL
and migrating the file in ``initlab.store.sqlite_file``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.store.base import Cell, Chunk, Store, conflict, new_experiment_id, recommit_difference, utc_now
from initlab.store.records import ExperimentRecord, RunRecord, StoredEpoch, canonical_json
from initlab.store.sqlite_file import APPLICATION, BUSY_TIMEOUT_S, SCHEMA_VERSION, inspect, migrate, set_wal
from initlab.store.sqlite_schema import (
    _EPOCH_COLUMNS,
    _EXPERIMENT_COLUMNS,
    _RUN_COLUMNS,
    _SCHEMA,
    _blob_digest,
    _digest,
    _epoch_record,
    _epoch_row,
    _experiment_record,
    _is_damage,
    _run_record,
    _run_row,
)


class SQLiteStore(Store):
    """The results store in one SQLite file. Open it with ``open_store(path)``."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        if self.path.is_dir():
            raise UserError(
                f"store path {self.path} is a directory; give a file path such as {self.path / 'initlab.db'}"
            )
        if self.path.exists():
            version = inspect(self.path)
        elif not create:
            raise UserError(f"no initlab store at {self.path}")
        else:
            version = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                why = exc.strerror or exc
                raise UserError(f"cannot create the store's directory {self.path.parent}: {why}") from None
        self._conn: sqlite3.Connection | None = None
        # The connection is shared between threads; the lock keeps each transaction whole.
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            if version is None:
                # only takes effect before the first table exists: a new store gives freed
                # pages (deleted checkpoints) back with `PRAGMA incremental_vacuum`
                self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            set_wal(self._conn)
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if version is None:
                self._initialise()
            elif version < SCHEMA_VERSION:
                migrate(self)
        except sqlite3.Error as exc:
            self.close()
            raise UserError(f"cannot open store {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _initialise(self) -> None:
        with self._write() as c:
            # Another process may have initialised it since _inspect: the DDL is IF NOT EXISTS
            # and the meta rows are written once.
            for statement in _SCHEMA:
                c.execute(statement)
            c.execute("INSERT OR IGNORE INTO meta VALUES ('application', ?)", (APPLICATION,))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ---- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (IMMEDIATE) so no reader-upgrade deadlock."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UserError(f"store {self.path} is closed")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise self._damaged(str(exc)) from None
                raise

    def _verified(self, rows: list[tuple[Any, ...]], what: str) -> list[tuple[Any, ...]]:
        """Rows whose last column is their checksum, checked and dropped (NULL: a version 1
        record, unchecked)."""
        out = []
        for row in rows:
            data, checksum = row[:-1], row[-1]
            if checksum is not None and checksum != _digest(data):
                raise self._damaged(f"a {what} record fails its checksum")
            out.append(data)
        return out

    # ---- health --------------------------------------------------------------------------------

    def _damaged(self, why: str) -> UserError:
        return UserError(
            f"store {self.path} is damaged ({why}); its numbers cannot be trusted. Restore it from a copy "
            f"(`sqlite3 {self.path} .recover` may save what is left)"
        )

    def check(self) -> None:
        """``PRAGMA quick_check``: raise ``UserError`` naming the first problem when the file is
        damaged (torn pages, broken b-trees, records that do not fit their page), so a report
        never reads numbers from a damaged file. Linear in the file size."""
        with self._lock:
            try:
                rows = self._connection().execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._damaged(str(exc)) from None
        problems = [r[0] for r in rows if r[0] != "ok"]
        if problems:
            more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
            raise self._damaged(f"SQLite quick_check: {problems[0]}{more}")

    def free_pages(self) -> tuple[int, int]:
        """``(free pages, all pages)`` of the file."""
        free = self._query("PRAGMA freelist_count")[0][0]
        return free, self._query("PRAGMA page_count")[0][0]

    def _reclaim(self) -> None:
        """Give free pages back (a no-op for a store made before auto_vacuum was set)."""
        with self._lock:
            # executescript steps the pragma to the end (a plain execute frees one page only)
            self._connection().executescript("PRAGMA incremental_vacuum;")

    def compact(self) -> bool:
        """Reclaim free pages: ``incremental_vacuum`` on a new store; on an older one a
        ``VACUUM`` that also turns ``auto_vacuum`` on. False when another connection holds the
        file (VACUUM needs it alone); nothing is lost either way."""
        with self._lock:
            conn = self._connection()
            try:
                if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                    conn.executescript("PRAGMA incremental_vacuum;")
                else:
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.OperationalError:
                return False
        return True

    # ---- experiments ---------------------------------------------------------------------------

    def _create_experiment(
        self, config_json: str, digest: str, name: str | None, versions: dict[str, str], created_at: str
    ) -> ExperimentRecord:
        with self._write() as c:

            def taken(candidate: str) -> bool:
                return c.execute("SELECT 1 FROM experiments WHERE id = ?", (candidate,)).fetchone() is not None

            eid = new_experiment_id(digest, taken)
            row = (
                eid,
                name,
                config_json,
                digest,
                created_at,
                "running",
                versions["initlab"],
                versions["torch"],
                versions["python"],
                "{}",
            )
            c.execute(
                f"INSERT INTO experiments ({_EXPERIMENT_COLUMNS}, checksum) VALUES ({', '.join('?' * 11)})",
                (*row, _digest(row)),
            )
        record = self._get_experiment(eid)
        assert record is not None
        return record

    def _experiment_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM experiments ORDER BY seq")]

    def _get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        rows = self._query(f"SELECT {_EXPERIMENT_COLUMNS}, checksum FROM experiments WHERE id = ?", (experiment_id,))
        return _experiment_record(self._verified(rows, "experiment")[0]) if rows else None

    def _find_experiment(self, digest: str) -> ExperimentRecord | None:
        rows = self._query(
            f"SELECT {_EXPERIMENT_COLUMNS}, checksum FROM experiments WHERE config_hash = ? ORDER BY seq DESC LIMIT 1",
            (digest,),
        )
        return _experiment_record(self._verified(rows, "experiment")[0]) if rows else None

    def list_experiments(self) -> list[ExperimentRecord]:
        rows = self._query(f"SELECT {_EXPERIMENT_COLUMNS}, checksum FROM experiments ORDER BY seq")
        return [_experiment_record(r) for r in self._verified(rows, "experiment")]

    def _update_experiment(self, experiment_id: str, change) -> bool:
        """Read-modify-write of one experiment row in one transaction, checksum renewed."""
        with self._write() as c:
            rows = c.execute(
                f"SELECT {_EXPERIMENT_COLUMNS}, checksum FROM experiments WHERE id = ?", (experiment_id,)
            ).fetchall()
            if not rows:
                return False
            row = change(list(self._verified(rows, "experiment")[0]))
            status, extra_json = row[5], row[9]
            c.execute(
                "UPDATE experiments SET status = ?, extra_json = ?, checksum = ? WHERE id = ?",
                (status, extra_json, _digest(tuple(row)), experiment_id),
            )
            return True

    def _set_status(self, experiment_id: str, status: str) -> bool:
        def change(row: list[Any]) -> list[Any]:
            row[5] = status
            return row

        return self._update_experiment(experiment_id, change)

    def _set_extra(self, experiment_id: str, key: str, value_json: str) -> bool:
        def change(row: list[Any]) -> list[Any]:
            extra = json.loads(row[9])
            extra[key] = json.loads(value_json)
            row[9] = canonical_json(extra, allow_nan=True)
            return row

        return self._update_experiment(experiment_id, change)

    # ---- runs ----------------------------------------------------------------------------------

    def _commit(self, experiment_id: str, chunk: Chunk, delete_keys: list[str]) -> int:
        new = 0
        with self._write() as c:
            for (scheme, seed), (run, epochs) in chunk.items():
                found = c.execute(
                    f"SELECT {_RUN_COLUMNS}, checksum FROM runs WHERE experiment_id = ? AND scheme = ? AND seed = ?",
                    (experiment_id, scheme, seed),
                ).fetchall()
                if not found:
                    # Written as we go: a later failure in this chunk must roll these back.
                    row = _run_row(run)
                    c.execute(
                        f"INSERT INTO runs ({_RUN_COLUMNS}, checksum) VALUES ({', '.join('?' * 12)})",
                        (*row, _digest(row)),
                    )
                    c.executemany(
                        f"INSERT INTO epochs ({_EPOCH_COLUMNS}, checksum) VALUES ({', '.join('?' * 11)})",
                        [(*r, _digest(r)) for r in (_epoch_row(e) for _, e in sorted(epochs.items()))],
                    )
                    new += 1
                    continue
                old_epochs = [
                    _epoch_record(r)
                    for r in self._verified(
                        c.execute(
                            f"SELECT {_EPOCH_COLUMNS}, checksum FROM epochs WHERE experiment_id = ? AND scheme = ? "
                            "AND seed = ?",
                            (experiment_id, scheme, seed),
                        ).fetchall(),
                        "epoch",
                    )
                ]
                reason = recommit_difference(_run_record(self._verified(found, "run")[0]), old_epochs, run, epochs)
                if reason:
                    raise conflict(experiment_id, reason)
            c.executemany(
                "DELETE FROM checkpoints WHERE experiment_id = ? AND key = ?", [(experiment_id, k) for k in delete_keys]
            )
        if delete_keys:
            self._reclaim()
        return new

    def _runs(self, experiment_id: str) -> list[RunRecord]:
        rows = self._query(
            f"SELECT {_RUN_COLUMNS}, checksum FROM runs WHERE experiment_id = ? ORDER BY scheme, seed", (experiment_id,)
        )
        return [_run_record(r) for r in self._verified(rows, "run")]

    def _epochs(self, experiment_id: str) -> list[StoredEpoch]:
        rows = self._query(
            f"SELECT {_EPOCH_COLUMNS}, checksum FROM epochs WHERE experiment_id = ? ORDER BY scheme, seed, epoch",
            (experiment_id,),
        )
        return [_epoch_record(r) for r in self._verified(rows, "epoch")]

    def _committed_cells(self, experiment_id: str) -> set[Cell]:
        rows = self._query("SELECT scheme, seed FROM runs WHERE experiment_id = ?", (experiment_id,))
        return {(scheme, seed) for scheme, seed in rows}

    # ---- checkpoints ---------------------------------------------------------------------------

    def _save_checkpoint(self, experiment_id: str, key: str, epoch: int, blob: bytes) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO checkpoints (experiment_id, key, epoch, blob, saved_at, checksum) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, key) DO UPDATE SET epoch = excluded.epoch, blob = excluded.blob, "
                "saved_at = excluded.saved_at, checksum = excluded.checksum",
                (experiment_id, key, epoch, blob, utc_now(), _blob_digest(experiment_id, key, epoch, blob)),
            )

    def _load_checkpoint(self, experiment_id: str, key: str) -> tuple[int, bytes] | None:
        rows = self._query(
            "SELECT epoch, blob, checksum FROM checkpoints WHERE experiment_id = ? AND key = ?", (experiment_id, key)
        )
        if not rows:
            return None
        epoch, blob, checksum = rows[0][0], bytes(rows[0][1]), rows[0][2]
        if checksum is not None and checksum != _blob_digest(experiment_id, key, epoch, blob):
            raise self._damaged(f"checkpoint {key!r} fails its checksum")
        return epoch, blob

    def _delete_checkpoint(self, experiment_id: str, key: str) -> bool:
        with self._write() as c:
            deleted = (
                c.execute("DELETE FROM checkpoints WHERE experiment_id = ? AND key = ?", (experiment_id, key)).rowcount
                == 1
            )
        self._reclaim()
        return deleted

    def _checkpoint_keys(self, experiment_id: str) -> list[str]:
        rows = self._query("SELECT key FROM checkpoints WHERE experiment_id = ? ORDER BY key", (experiment_id,))
        return [key for (key,) in rows]


def open_store(path: str | os.PathLike[str], *, create: bool = True) -> SQLiteStore:
    """Open the initlab store at ``path``, creating the file (and its directory) if missing.

    With ``create=False`` a missing file is a ``UserError`` (for commands that only read).
    A file that is not an initlab store, or was written by a newer schema, raises ``UserError``
    and is left exactly as it was.
    """
    return SQLiteStore(path, create=create)
