"""What a cell returns, and its one conversion into store records (both backends use it).

``run_cell`` (``initlab.sweep.runner``) turns the engine's ``EnsembleResult`` into a
``CellResult``: typed, picklable (a Ray task returns it as is) and free of tensors. The driver
alone calls ``CellResult.store_records(experiment_id)`` and commits what it returns.

A run record's ``extra`` holds what the store's columns do not:

- ``scheme`` and ``lr``: the member's scheme and learning rate (the ``scheme`` column holds the
  member's label, ``"he_normal@lr=0.01"`` in grid mode);
- ``val_acc``: validation accuracy after each epoch (the only accuracy lr selection reads);
- ``steps_to_target``: computed once, by the engine, and stored with the run;
- ``correct``: budget epoch -> which test examples were classified right, as base64 of
  ``numpy.packbits`` (``n_test`` bits), for paired bootstraps over test examples;
- ``backend``, ``cell``, ``steps_per_epoch``: provenance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initlab.engine.result import pack_correct
from initlab.sweep.config import MemberSpec


@dataclass(frozen=True)
class MemberOutcome:
    """One member's result from a cell: the engine's per-epoch records and its outcome."""

    spec: MemberSpec
    status: str
    diverged_step: int | None
    steps_to_target: int | None
    records: tuple[Any, ...]  # initlab.engine.EpochRecord, one per epoch
    correct: dict[int, str] = field(default_factory=dict)  # budget epoch -> pack_correct(...)
    n_test: int = 0


@dataclass(frozen=True)
class CellResult:
    """A finished cell: every member's outcome, and how it was trained."""

    cell: int
    backend: str
    wall_time: float
    steps_per_epoch: int
    members: tuple[MemberOutcome, ...]

    @classmethod
    def from_ensemble(cls, cell: int, members: tuple[MemberSpec, ...], result: Any) -> CellResult:
        """From an engine ``EnsembleResult`` whose members are ``members``, in order."""
        outcomes = []
        for spec, m in zip(members, result.members):
            outcomes.append(MemberOutcome(
                spec=spec, status=m.status, diverged_step=m.diverged_step, steps_to_target=m.steps_to_target,
                records=tuple(m.records), correct={int(k): pack_correct(v) for k, v in m.test_correct.items()},
                n_test=int(next(iter(m.test_correct.values())).numel()) if m.test_correct else 0,
            ))
        return cls(cell, result.backend, float(result.wall_time), int(result.steps_per_epoch), tuple(outcomes))

    def store_records(self, experiment_id: str) -> tuple[list, list]:
        """``(RunRecord list, EpochRecord list)`` for the store: the one place this mapping lives."""
        from initlab.store import EpochRecord, RunRecord

        runs, epochs = [], []
        for m in self.members:
            last = m.records[-1]
            label, seed = m.spec.key
            runs.append(RunRecord(
                experiment_id=experiment_id, scheme=label, seed=seed, status=m.status, test_acc=last.test_acc,
                test_loss=last.test_loss, train_loss=last.train_loss, train_acc=last.train_acc,
                diverged_step=m.diverged_step, wall_time=self.wall_time,
                extra={"backend": self.backend, "cell": self.cell, "steps_per_epoch": self.steps_per_epoch,
                       "scheme": m.spec.scheme, "lr": m.spec.lr, "steps_to_target": m.steps_to_target,
                       "val_acc": [_finite(r.val_acc) for r in m.records],
                       "correct": {str(k): v for k, v in sorted(m.correct.items())}, "n_test": m.n_test},
            ))
            for r in m.records:
                epochs.append(EpochRecord(
                    experiment_id=experiment_id, scheme=label, seed=seed, epoch=r.epoch, step=r.step,
                    train_loss=r.train_loss, train_acc=r.train_acc, test_loss=r.test_loss, test_acc=r.test_acc,
                    wall_time=r.wall_time,
                ))
        return runs, epochs


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
