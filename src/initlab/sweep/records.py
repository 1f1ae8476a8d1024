"""What a chunk returns, and its one conversion into store records (both backends use it).

``run_chunk`` (``initlab.sweep.runner``) turns the engine's ``EnsembleResult`` into a
``ChunkResult``: typed, picklable (a Ray task returns it as is) and free of tensors. The driver
alone calls ``ChunkResult.store_records(experiment_id)`` and commits what it returns.

A run record's ``extra`` holds what the store's columns do not:

- ``scheme`` and ``lr``: the member's scheme and learning rate (the ``scheme`` column holds the
  member's label, ``"he_normal@lr=0.01"`` in grid mode);
- ``val_acc``: validation accuracy after each epoch (the only accuracy lr selection reads);
- ``steps_to_target``: computed once, by the engine, and stored with the run;
- ``correct``: budget epoch -> which test examples were classified right, as base64 of
  ``numpy.packbits`` (``n_test`` bits), for paired bootstraps over test examples;
- ``r2`` (regression): ``1 − MSE / Var(y_test)`` (``initlab.tasks.r_squared``);
- ``backend``, ``backend_reason``, ``cell`` (the member chunk's index; the stored key keeps its
  first name), ``steps_per_epoch``, ``device``: provenance.

Regression losses are trained on standardized targets; here, and only here, they are put back in
the target's own units: ``MSE = MSE_std · σ_train²`` (``scale``), for the run and every epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initlab.engine.result import pack_correct
from initlab.sweep.config import MemberSpec


@dataclass(frozen=True)
class MemberOutcome:
    """One member's result from a chunk: the engine's per-epoch records and its outcome."""

    spec: MemberSpec
    status: str
    diverged_step: int | None
    steps_to_target: int | None
    records: tuple[Any, ...]  # initlab.engine.EpochRecord, one per epoch
    correct: dict[int, str] = field(default_factory=dict)  # budget epoch -> pack_correct(...)
    n_test: int = 0


@dataclass(frozen=True)
class ChunkResult:
    """A finished chunk: every member's outcome, and how it was trained."""

    chunk: int
    backend: str
    wall_time: float
    steps_per_epoch: int
    members: tuple[MemberOutcome, ...]
    device: str = "cpu"
    backend_reason: str = ""  # why the engine chose this backend (EnsembleResult.backend_reason)
    task: str = "classification"
    scale: float = 1.0  # σ_train² of a regression target: loss · scale is in the target's units
    test_var: float = math.nan  # Var(y_test) in the target's units, for R²

    @classmethod
    def from_ensemble(
        cls,
        chunk: int,
        members: tuple[MemberSpec, ...],
        result: Any,
        *,
        task: str = "classification",
        scale: float = 1.0,
        test_var: float = math.nan,
    ) -> ChunkResult:
        """From an engine ``EnsembleResult`` whose members are ``members``, in order; ``scale`` and
        ``test_var`` (regression) put its losses in the target's units (``runner._to_original_units``)."""
        outcomes = []
        for spec, m in zip(members, result.members):
            outcomes.append(
                MemberOutcome(
                    spec=spec,
                    status=m.status,
                    diverged_step=m.diverged_step,
                    steps_to_target=m.steps_to_target,
                    records=tuple(m.records),
                    correct={int(k): pack_correct(v) for k, v in m.test_correct.items()},
                    n_test=int(next(iter(m.test_correct.values())).numel()) if m.test_correct else 0,
                )
            )
        return cls(
            chunk,
            result.backend,
            float(result.wall_time),
            int(result.steps_per_epoch),
            tuple(outcomes),
            device=str(result.state.get("device", "cpu")),
            backend_reason=str(getattr(result, "backend_reason", "") or ""),
            task=task,
            scale=float(scale),
            test_var=float(test_var),
        )

    def store_records(self, experiment_id: str) -> tuple[list, list]:
        """``(RunRecord list, StoredEpoch list)`` for the store: the one place this mapping lives."""
        from initlab.store import RunRecord, StoredEpoch
        from initlab.tasks import r_squared

        scale = self.scale
        runs, epochs = [], []
        for m in self.members:
            last = m.records[-1]
            label, seed = m.spec.key
            extra = {
                "backend": self.backend,
                "cell": self.chunk,
                "steps_per_epoch": self.steps_per_epoch,
                "device": self.device,
                "scheme": m.spec.scheme,
                "lr": m.spec.lr,
                "steps_to_target": m.steps_to_target,
                "val_acc": [_finite(r.val_acc) for r in m.records],
                "correct": {str(k): v for k, v in sorted(m.correct.items())},
                "n_test": m.n_test,
            }
            if self.backend_reason:
                extra["backend_reason"] = self.backend_reason
            if self.task == "regression":  # the MSE in the target's own units, R² beside it
                extra["r2"] = r_squared(last.test_loss * scale, self.test_var)
            cell: dict[str, Any] = {"experiment_id": experiment_id, "scheme": label, "seed": seed}
            runs.append(
                RunRecord(
                    **cell,
                    status=m.status,
                    diverged_step=m.diverged_step,
                    wall_time=self.wall_time,
                    extra=extra,
                    **_metrics(last, scale),
                )
            )
            for r in m.records:
                epochs.append(
                    StoredEpoch(**cell, epoch=r.epoch, step=r.step, wall_time=r.wall_time, **_metrics(r, scale))
                )
        return runs, epochs


def commit_chunk(store: Any, experiment_id: str, chunk: Any, result: ChunkResult) -> None:
    """Commit a finished chunk's records and drop its checkpoint, in one transaction."""
    runs, epochs = result.store_records(experiment_id)
    store.commit_runs(experiment_id, runs, epochs, delete_checkpoints=[chunk.key])


def _metrics(record: Any, scale: float) -> dict[str, Any]:
    """An engine ``EpochRecord``'s stored metrics, losses times ``scale`` (regression: target units)."""
    return {
        "test_acc": record.test_acc,
        "test_loss": record.test_loss * scale,
        "train_loss": record.train_loss * scale,
        "train_acc": record.train_acc,
    }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
