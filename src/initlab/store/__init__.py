"""The results store: experiments, runs (one per (scheme, seed) cell), per-epoch metrics and
resume checkpoints, with documented invariants (see ``initlab.store.base`` and docs/store.md).

>>> from initlab.store import open_store
>>> with open_store("runs/initlab.db") as store:            # doctest: +SKIP
...     exp = store.create_experiment({"dataset": "digits", "seeds": 10})
...     store.commit_runs(exp.id, runs, epochs, delete_checkpoints=["chunk-0"])

``open_store`` gives the SQLite store; ``MemoryStore`` is the in-memory reference implementation.
"""

from __future__ import annotations

from initlab.store.base import Cell, ConflictError, Store, current_versions
from initlab.store.memory import MemoryStore
from initlab.store.records import (
    EXPERIMENT_STATUSES,
    RUN_STATUSES,
    ExperimentRecord,
    RunRecord,
    StoredEpoch,
    canonical_json,
    config_hash,
)
from initlab.store.sqlite import SCHEMA_VERSION, SQLiteStore, open_store

__all__ = [
    "Cell",
    "ConflictError",
    "EXPERIMENT_STATUSES",
    "ExperimentRecord",
    "MemoryStore",
    "RUN_STATUSES",
    "RunRecord",
    "SCHEMA_VERSION",
    "SQLiteStore",
    "Store",
    "StoredEpoch",
    "canonical_json",
    "config_hash",
    "current_versions",
    "open_store",
]
