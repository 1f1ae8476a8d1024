"""The SQLite store's file: recognising an initlab store before writing to it, WAL, migration.

``inspect`` reads a file's schema version without changing it (or refuses a file that is not
an initlab store, or is newer than this initlab); ``migrate`` upgrades a version 1 store.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.errors import UserError
from initlab.store.sqlite_schema import _EXPERIMENT_COLUMNS, _EXPERIMENTS_DDL, _digest

if TYPE_CHECKING:
    from initlab.store.sqlite import SQLiteStore

SCHEMA_VERSION = 2
APPLICATION = "initlab"
_SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 60.0  # a reader or second writer waits this long for a lock before failing


def not_a_store(path: Path, why: str) -> UserError:
    return UserError(f"{path} is not an initlab store ({why}); use a new path or an existing initlab store")


def inspect(path: Path) -> int | None:
    """The schema version of an existing file, None for an empty database; reads only.

    Raises ``UserError`` for a file that is not an initlab store or was written by a newer
    schema, leaving it exactly as it was: the connection is ``query_only`` and issues SELECTs
    only. (It is not opened ``mode=ro``: a read-only connection to a WAL database cannot clean
    up the -wal and -shm files it creates, and would leave them beside the refused file.)
    """
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if not head:
        return None
    if head != _SQLITE_MAGIC:
        raise not_a_store(path, "not an SQLite database")
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as probe:
            probe.execute("PRAGMA query_only = ON")
            tables = sorted(r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            if not tables:
                return None
            if "meta" not in tables:
                raise not_a_store(path, f"an SQLite database with tables {', '.join(tables)}")
            meta = dict(probe.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as exc:  # locked, unreadable: a store perhaps, but not now
        raise UserError(f"cannot read store {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        raise not_a_store(path, f"SQLite says: {exc}") from None
    if meta.get("application") != APPLICATION:
        raise not_a_store(path, f"its meta table names application {meta.get('application')!r}")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError):
        raise not_a_store(path, f"schema_version {meta.get('schema_version')!r} is not an integer") from None
    if version > SCHEMA_VERSION:
        raise UserError(
            f"store {path} was written by schema {version}, this initlab reads <= {SCHEMA_VERSION}; upgrade initlab"
        )
    if version < 1:
        raise not_a_store(path, f"schema_version {version} was never written by initlab")
    return version


def set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL; another process switching at the same moment makes SQLite answer
    "locked" at once (the busy timeout does not cover it), so retry for a while."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def migrate(store: SQLiteStore) -> None:
    """Version 1 -> 2: the experiments table's status CHECK gains 'failed' (SQLite cannot
    alter a CHECK: the table is rebuilt, SQLite's documented 12-step way) and every table a
    ``checksum`` column (computed for experiments; NULL, i.e. unchecked, for older runs,
    epochs and checkpoints). A read-only file cannot be migrated and is refused."""
    conn = store._connection()
    with store._lock:
        conn.execute("PRAGMA foreign_keys = OFF")  # only outside a transaction
        try:
            with store._write() as c:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row and int(row[0]) >= 2:  # another process migrated it meanwhile
                    return
                c.execute(_EXPERIMENTS_DDL.format(name="experiments_v2"))
                rows = c.execute(f"SELECT seq, {_EXPERIMENT_COLUMNS} FROM experiments").fetchall()
                c.executemany(
                    f"INSERT INTO experiments_v2 (seq, {_EXPERIMENT_COLUMNS}, checksum) VALUES ({', '.join('?' * 12)})",
                    [(*r, _digest(r[1:])) for r in rows],
                )
                for table in ("runs", "epochs", "checkpoints"):  # older records stay unchecked (NULL)
                    c.execute(f"ALTER TABLE {table} ADD COLUMN checksum TEXT")
                c.execute("DROP TABLE experiments")
                c.execute("ALTER TABLE experiments_v2 RENAME TO experiments")
                c.execute("CREATE INDEX IF NOT EXISTS experiments_by_hash ON experiments (config_hash, seq)")
                c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                if c.execute("PRAGMA foreign_key_check").fetchall():
                    raise sqlite3.IntegrityError("foreign keys broken by the migration")
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            raise UserError(
                f"store {store.path} has schema 1 and must be upgraded to {SCHEMA_VERSION} by a process that "
                f"can write it (it is read-only here); open it once where it is writable"
            ) from None
        finally:
            conn.execute("PRAGMA foreign_keys = ON")
