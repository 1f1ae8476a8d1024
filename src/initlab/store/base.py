"""The results-store interface and its invariants (as in Optuna's storages: one small interface,
documented invariants, one conformance suite in tests/test_store.py that every implementation
passes).

Invariants every implementation keeps:

1. **Committed records never change.** Once ``commit_runs`` returns, the run and epoch records
   of its cells read back equal (NaN == NaN) forever. Committing a cell again is a no-op when
   the new records are the same result (every field equal except the timing field
   ``wall_time``); any other difference raises ``ConflictError`` and changes nothing.
2. **A chunk commits whole or not at all.** ``commit_runs`` writes its runs, their epochs and the
   deletion of the named checkpoints in one transaction: on any error, or a kill, none of it is
   visible, and the checkpoints are still there. So there is never a moment with neither the
   chunk's results nor its checkpoint.
3. **Readers see whole chunks.** A reader (another handle, thread or process) sees a chunk
   entirely or not at all; a cell's run and all its epochs arrive together (an epoch record
   exists only with its cell's run).
4. **Resume is idempotent.** ``committed_cells`` says what is done; re-running a finished
   chunk and committing it again changes nothing (see 1).
5. **Deterministic order.** ``list_experiments`` is in creation order; ``runs`` by (scheme,
   seed); ``epochs`` by (scheme, seed, epoch), whatever order the chunks were committed in.
6. **Values round-trip exactly**: floats bit for bit, NaN and +-inf included; configs and
   ``extra`` dicts as JSON (tuples come back as lists).
7. **Bad input raises ``UserError``** (a ``ValueError``) naming the value and what is allowed,
   before anything is written.

Experiment metadata (``status``, ``extra``) is mutable; results are not. Checkpoints are
scratch space: ``save_checkpoint`` replaces the previous blob of its key atomically.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from initlab.errors import UserError, closest
from initlab.store.records import (
    EXPERIMENT_STATUSES,
    ExperimentRecord,
    RunRecord,
    StoredEpoch,
    canonical_json,
    config_hash,
)

Cell = tuple[str, int]
# A validated chunk: cell -> (run, its epochs by epoch number).
Chunk = dict[Cell, tuple[RunRecord, dict[int, StoredEpoch]]]

_ID_LENGTH = 8  # hex digits: 32 bits, collisions checked anyway
_MIN_PREFIX = 4  # shortest id prefix get_experiment resolves


class ConflictError(UserError):
    """A cell is already committed with a different result; nothing was written."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_versions() -> dict[str, str]:
    """Versions recorded with every experiment: initlab, torch and Python."""
    from initlab import __version__

    torch = sys.modules.get("torch")
    if torch is not None:
        torch_version = str(torch.__version__)
    else:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = "absent"
    return {"initlab": __version__, "torch": torch_version, "python": platform.python_version()}


_id_counter = itertools.count()


def new_experiment_id(config_digest: str, taken: Callable[[str], bool]) -> str:
    """A short hex id from the config hash and the time, re-drawn until ``taken`` says it's free."""
    while True:
        nonce = f"{config_digest}:{time.time_ns()}:{os.getpid()}:{next(_id_counter)}"
        candidate = hashlib.sha256(nonce.encode()).hexdigest()[:_ID_LENGTH]
        if not taken(candidate):
            return candidate


def check_status(status: Any) -> str:
    if status not in EXPERIMENT_STATUSES:
        raise UserError(f"experiment status {status!r} is invalid; allowed: {', '.join(EXPERIMENT_STATUSES)}")
    return status


def check_key(key: Any, what: str = "checkpoint key") -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"{what} must be a non-empty string; got {key!r:.80}")
    return key


def _check_owned(record: Any, record_type: type[RunRecord] | type[StoredEpoch], kind: str, experiment_id: str) -> None:
    """``record`` is a ``record_type`` of experiment ``experiment_id`` (``kind``: run or epoch)."""
    if not isinstance(record, record_type):
        raise UserError(f"commit_runs: {kind}s must be {record_type.__name__}; got {type(record).__name__}")
    if record.experiment_id != experiment_id:
        raise UserError(
            f"commit_runs: {kind} {record.cell} belongs to experiment {record.experiment_id!r}, not {experiment_id!r}"
        )


def prepare_chunk(experiment_id: str, runs: Iterable[RunRecord], epochs: Iterable[StoredEpoch]) -> Chunk:
    """Validate a chunk before anything is written: types, owner, no duplicates, epochs with runs."""
    chunk: Chunk = {}
    for run in runs:
        _check_owned(run, RunRecord, "run", experiment_id)
        if run.cell in chunk:
            raise UserError(f"commit_runs: cell {run.cell} appears twice in one chunk")
        chunk[run.cell] = (run, {})
    for ep in epochs:
        _check_owned(ep, StoredEpoch, "epoch", experiment_id)
        if ep.cell not in chunk:
            # An epoch without its run would be half a cell for a reader (invariant 3).
            raise UserError(f"commit_runs: epoch record for cell {ep.cell} has no run in this chunk")
        by_epoch = chunk[ep.cell][1]
        if ep.epoch in by_epoch:
            raise UserError(f"commit_runs: epoch {ep.epoch} of cell {ep.cell} appears twice in one chunk")
        by_epoch[ep.epoch] = ep
    return chunk


def _without_time(record: RunRecord | StoredEpoch) -> dict[str, Any]:
    """Field name -> comparable value (NaN-aware, dicts as JSON), timing left out."""
    names = [f.name for f in fields(record)]
    return {n: v for n, v in zip(names, record._key()) if n != "wall_time"}


def recommit_difference(
    old_run: RunRecord, old_epochs: Sequence[StoredEpoch], new_run: RunRecord, new_epochs: Mapping[int, StoredEpoch]
) -> str | None:
    """Why committing ``new_*`` over the committed ``old_*`` would change a result, or None.

    ``wall_time`` is ignored: a recomputed cell takes its own time but must reproduce the rest.
    """
    cell = old_run.cell
    old, new = _without_time(old_run), _without_time(new_run)
    for name in old:
        if old[name] != new[name]:
            return f"cell {cell} is committed with {name}={getattr(old_run, name)!r}; got {getattr(new_run, name)!r}"
    old_by_epoch = {e.epoch: e for e in old_epochs}
    if set(old_by_epoch) != set(new_epochs):
        return f"cell {cell} is committed with epochs {sorted(old_by_epoch)}; got {sorted(new_epochs)}"
    for n, old_epoch in sorted(old_by_epoch.items()):
        old, new = _without_time(old_epoch), _without_time(new_epochs[n])
        for name in old:
            if old[name] != new[name]:
                return (
                    f"cell {cell} epoch {n} is committed with {name}={getattr(old_epoch, name)!r}; "
                    f"got {getattr(new_epochs[n], name)!r}"
                )
    return None


def conflict(experiment_id: str, reason: str) -> ConflictError:
    return ConflictError(
        f"experiment {experiment_id}: {reason}; committed records never change, nothing of this chunk was written"
    )


class Store(abc.ABC):
    """A results store: experiments, their runs and per-epoch metrics, and resume checkpoints.

    See the module docstring for the invariants. A handle may be shared between threads; open
    one handle per process. Use it as a context manager or call ``close()``.
    """

    #: Where the store lives, for messages ("<memory>" for an in-memory store).
    location: str = "<store>"

    # ---- experiments ---------------------------------------------------------------------------

    def create_experiment(self, config: Mapping[str, Any], *, name: str | None = None) -> ExperimentRecord:
        """Record a new experiment with status "running" and return it.

        ``config`` must be JSON data and should hold exactly what determines the results (not
        output paths): its ``config_hash`` is how ``find_experiment`` recognises a rerun.
        """
        digest = config_hash(config)
        if name is not None and not isinstance(name, str):
            raise UserError(f"experiment name must be a string or None; got {name!r:.80}")
        return self._create_experiment(canonical_json(dict(config)), digest, name, current_versions(), utc_now())

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        """The experiment with this id, or with this unique id prefix (>= 4 characters).

        Unknown or ambiguous ids raise ``UserError`` naming the nearest known ids.
        """
        if not isinstance(experiment_id, str) or not experiment_id:
            raise UserError(f"experiment id must be a non-empty string; got {experiment_id!r:.80}")
        record = self._get_experiment(experiment_id)
        if record is not None:
            return record
        ids = self._experiment_ids()
        matches = [i for i in ids if i.startswith(experiment_id)] if len(experiment_id) >= _MIN_PREFIX else []
        if len(matches) == 1:
            record = self._get_experiment(matches[0])
            assert record is not None
            return record
        if matches:
            raise UserError(
                f"experiment id prefix {experiment_id!r} is ambiguous in {self.location}: matches {', '.join(matches)}"
            )
        raise self._unknown(experiment_id, ids)

    def find_experiment(self, config_hash: str) -> ExperimentRecord | None:
        """The most recently created experiment with this config hash, or None (for resume)."""
        if not isinstance(config_hash, str):
            raise UserError(f"config_hash must be a string; got {config_hash!r:.80}")
        return self._find_experiment(config_hash)

    @abc.abstractmethod
    def list_experiments(self) -> list[ExperimentRecord]:
        """All experiments, in creation order."""

    def set_status(self, experiment_id: str, status: str) -> None:
        """Set an experiment's status: one of "running", "finished", "interrupted" (stopped by a
        signal or Ctrl-C; resumable), "failed" (stopped by an error, e.g. out of memory)."""
        check_status(status)
        if not self._set_status(experiment_id, status):
            raise self._unknown(experiment_id)

    def set_experiment_extra(self, experiment_id: str, key: str, value: Any) -> None:
        """Set ``extra[key] = value`` on an experiment (JSON value, NaN allowed; overwrites)."""
        check_key(key, "extra key")
        text = canonical_json(value, allow_nan=True, what=f"extra[{key!r}]")
        if not self._set_extra(experiment_id, key, text):
            raise self._unknown(experiment_id)

    # ---- runs ----------------------------------------------------------------------------------

    def commit_runs(
        self,
        experiment_id: str,
        runs: Iterable[RunRecord],
        epochs: Iterable[StoredEpoch] = (),
        *,
        delete_checkpoints: Iterable[str] = (),
    ) -> int:
        """Commit a chunk of finished cells, their epoch records, and delete the chunk's
        checkpoints, all in one transaction. Returns how many cells were new.

        Cells already committed with the same result are skipped; with a different result the
        whole chunk is refused with ``ConflictError``. Every epoch record's cell must have its
        run in the same chunk.
        """
        chunk = prepare_chunk(experiment_id, runs, epochs)
        keys = [check_key(k) for k in delete_checkpoints]
        self._require(experiment_id)
        return self._commit(experiment_id, chunk, keys)

    def runs(self, experiment_id: str) -> list[RunRecord]:
        """Committed runs of an experiment, ordered by (scheme, seed)."""
        self._require(experiment_id)
        return self._runs(experiment_id)

    def epochs(self, experiment_id: str) -> list[StoredEpoch]:
        """Committed epoch records of an experiment, ordered by (scheme, seed, epoch)."""
        self._require(experiment_id)
        return self._epochs(experiment_id)

    def committed_cells(self, experiment_id: str) -> set[Cell]:
        """The (scheme, seed) cells committed for an experiment: what resume skips."""
        self._require(experiment_id)
        return self._committed_cells(experiment_id)

    # ---- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, experiment_id: str, key: str, epoch: int, blob: bytes) -> None:
        """Store ``blob`` as the checkpoint of ``key`` after ``epoch``, replacing the previous one
        atomically (a reader or a kill sees the old or the new, never a mix)."""
        check_key(key)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise UserError(f"checkpoint epoch must be an integer >= 0; got {epoch!r:.80}")
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise UserError(f"checkpoint blob must be bytes; got {type(blob).__name__}")
        self._require(experiment_id)
        self._save_checkpoint(experiment_id, key, epoch, bytes(blob))

    def load_checkpoint(self, experiment_id: str, key: str) -> tuple[int, bytes] | None:
        """``(epoch, blob)`` last saved for ``key``, or None."""
        check_key(key)
        self._require(experiment_id)
        return self._load_checkpoint(experiment_id, key)

    def delete_checkpoint(self, experiment_id: str, key: str) -> bool:
        """Delete the checkpoint of ``key``; True when there was one. Prefer
        ``commit_runs(..., delete_checkpoints=[key])``, which does it in the commit."""
        check_key(key)
        self._require(experiment_id)
        return self._delete_checkpoint(experiment_id, key)

    def checkpoint_keys(self, experiment_id: str) -> list[str]:
        """Keys with a checkpoint in this experiment, sorted (to find stale ones)."""
        self._require(experiment_id)
        return self._checkpoint_keys(experiment_id)

    # ---- health --------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``UserError`` when the store's storage is damaged (nothing to check in memory)."""

    def compact(self) -> bool:
        """Give unused space back; True when done (nothing to do in memory)."""
        return True

    # ---- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the handle (a closed SQLite handle raises ``UserError`` on use)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- shared helpers ------------------------------------------------------------------------

    def _require(self, experiment_id: str) -> None:
        if not isinstance(experiment_id, str) or self._get_experiment(experiment_id) is None:
            raise self._unknown(experiment_id)

    def _unknown(self, experiment_id: object, ids: Sequence[str] | None = None) -> UserError:
        ids = self._experiment_ids() if ids is None else ids
        if not ids:
            return UserError(f"unknown experiment {experiment_id!r}: the store {self.location} holds no experiments")
        near = closest(str(experiment_id), ids)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        recent = ", ".join(reversed(ids[-5:]))
        return UserError(f"unknown experiment {experiment_id!r} in {self.location}.{hint} Most recent: {recent}")

    # ---- what an implementation provides -------------------------------------------------------

    @abc.abstractmethod
    def _create_experiment(
        self, config_json: str, digest: str, name: str | None, versions: dict[str, str], created_at: str
    ) -> ExperimentRecord:
        """Insert an experiment under a fresh ``new_experiment_id`` (checked inside the write)."""

    @abc.abstractmethod
    def _experiment_ids(self) -> list[str]:
        """All ids in creation order."""

    @abc.abstractmethod
    def _get_experiment(self, experiment_id: str) -> ExperimentRecord | None: ...

    @abc.abstractmethod
    def _find_experiment(self, digest: str) -> ExperimentRecord | None: ...

    @abc.abstractmethod
    def _set_status(self, experiment_id: str, status: str) -> bool:
        """False when the experiment does not exist."""

    @abc.abstractmethod
    def _set_extra(self, experiment_id: str, key: str, value_json: str) -> bool:
        """False when the experiment does not exist; read-modify-write in one transaction."""

    @abc.abstractmethod
    def _commit(self, experiment_id: str, chunk: Chunk, delete_keys: list[str]) -> int:
        """One transaction: per cell, insert or ``recommit_difference`` check; then delete keys."""

    @abc.abstractmethod
    def _runs(self, experiment_id: str) -> list[RunRecord]: ...

    @abc.abstractmethod
    def _epochs(self, experiment_id: str) -> list[StoredEpoch]: ...

    @abc.abstractmethod
    def _committed_cells(self, experiment_id: str) -> set[Cell]: ...

    @abc.abstractmethod
    def _save_checkpoint(self, experiment_id: str, key: str, epoch: int, blob: bytes) -> None: ...

    @abc.abstractmethod
    def _load_checkpoint(self, experiment_id: str, key: str) -> tuple[int, bytes] | None: ...

    @abc.abstractmethod
    def _delete_checkpoint(self, experiment_id: str, key: str) -> bool: ...

    @abc.abstractmethod
    def _checkpoint_keys(self, experiment_id: str) -> list[str]: ...
