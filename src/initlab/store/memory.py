"""An in-memory store: the reference implementation of the interface, for tests and dry runs.

Records are frozen and their dicts already normalised through JSON when built; dicts are copied
on the way out, so callers share nothing mutable with the store and values round-trip exactly
as in the SQLite store. One lock makes every operation atomic; a chunk is checked in full
before any of it is applied. Nothing persists.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from initlab.store.base import Cell, Chunk, Store, conflict, new_experiment_id, recommit_difference
from initlab.store.records import ExperimentRecord, RunRecord, StoredEpoch, canonical_json


class MemoryStore(Store):
    """A ``Store`` held in this process's memory; share the object between threads."""

    def __init__(self) -> None:
        self.location = "<memory>"
        self._lock = threading.RLock()
        self._experiments: dict[str, ExperimentRecord] = {}  # insertion order = creation order
        self._runs_by_cell: dict[str, dict[Cell, RunRecord]] = {}
        self._epochs_by_cell: dict[str, dict[Cell, list[StoredEpoch]]] = {}
        self._checkpoints: dict[str, dict[str, tuple[int, bytes]]] = {}

    def _create_experiment(
        self, config_json: str, digest: str, name: str | None, versions: dict[str, str], created_at: str
    ) -> ExperimentRecord:
        with self._lock:
            eid = new_experiment_id(digest, self._experiments.__contains__)
            self._experiments[eid] = ExperimentRecord(
                id=eid,
                name=name,
                config=json.loads(config_json),
                config_hash=digest,
                created_at=created_at,
                status="running",
                initlab_version=versions["initlab"],
                torch_version=versions["torch"],
                python_version=versions["python"],
                extra={},
            )
            self._runs_by_cell[eid] = {}
            self._epochs_by_cell[eid] = {}
            self._checkpoints[eid] = {}
            return self._copy(self._experiments[eid])

    @staticmethod
    def _copy(record: ExperimentRecord) -> ExperimentRecord:
        # Callers get their own dicts: mutating one must not reach the store.
        return replace(
            record,
            config=json.loads(canonical_json(record.config)),
            extra=json.loads(canonical_json(record.extra, allow_nan=True)),
        )

    def _experiment_ids(self) -> list[str]:
        with self._lock:
            return list(self._experiments)

    def _get_experiment(self, experiment_id: str) -> ExperimentRecord | None:
        with self._lock:
            record = self._experiments.get(experiment_id)
            return self._copy(record) if record else None

    def _find_experiment(self, digest: str) -> ExperimentRecord | None:
        with self._lock:
            hits = [e for e in self._experiments.values() if e.config_hash == digest]
            return self._copy(hits[-1]) if hits else None

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._lock:
            return [self._copy(e) for e in self._experiments.values()]

    def _set_status(self, experiment_id: str, status: str) -> bool:
        with self._lock:
            if experiment_id not in self._experiments:
                return False
            self._experiments[experiment_id] = replace(self._experiments[experiment_id], status=status)
            return True

    def _set_extra(self, experiment_id: str, key: str, value_json: str) -> bool:
        with self._lock:
            record = self._experiments.get(experiment_id)
            if record is None:
                return False
            self._experiments[experiment_id] = replace(record, extra={**record.extra, key: json.loads(value_json)})
            return True

    def _commit(self, experiment_id: str, chunk: Chunk, delete_keys: list[str]) -> int:
        with self._lock:
            runs, epochs = self._runs_by_cell[experiment_id], self._epochs_by_cell[experiment_id]
            fresh = []
            for cell, (run, new_epochs) in chunk.items():
                if cell not in runs:
                    fresh.append((cell, run, new_epochs))
                    continue
                reason = recommit_difference(runs[cell], epochs[cell], run, new_epochs)
                if reason:
                    raise conflict(experiment_id, reason)
            for cell, run, new_epochs in fresh:  # all checks passed: apply, nothing can fail now
                runs[cell] = run
                epochs[cell] = [new_epochs[n] for n in sorted(new_epochs)]
            for key in delete_keys:
                self._checkpoints[experiment_id].pop(key, None)
            return len(fresh)

    def _runs(self, experiment_id: str) -> list[RunRecord]:
        with self._lock:
            # Rebuilt from scratch so callers' records share no dicts with the store.
            return [
                replace(r, extra=json.loads(canonical_json(r.extra, allow_nan=True)))
                for _, r in sorted(self._runs_by_cell[experiment_id].items())
            ]

    def _epochs(self, experiment_id: str) -> list[StoredEpoch]:
        with self._lock:
            by_cell = self._epochs_by_cell[experiment_id]
            return [e for cell in sorted(by_cell) for e in by_cell[cell]]

    def _committed_cells(self, experiment_id: str) -> set[Cell]:
        with self._lock:
            return set(self._runs_by_cell[experiment_id])

    def _save_checkpoint(self, experiment_id: str, key: str, epoch: int, blob: bytes) -> None:
        with self._lock:
            self._checkpoints[experiment_id][key] = (epoch, blob)

    def _load_checkpoint(self, experiment_id: str, key: str) -> tuple[int, bytes] | None:
        with self._lock:
            return self._checkpoints[experiment_id].get(key)

    def _delete_checkpoint(self, experiment_id: str, key: str) -> bool:
        with self._lock:
            return self._checkpoints[experiment_id].pop(key, None) is not None

    def _checkpoint_keys(self, experiment_id: str) -> list[str]:
        with self._lock:
            return sorted(self._checkpoints[experiment_id])
