"""Run one cell: train its members together and return a typed ``CellResult``.

Both backends call ``run_cell``; only the driver turns its result into store records
(``CellResult.store_records``) and commits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab.engine import Member, TrainConfig, state_from_bytes, state_to_bytes, train
from initlab.schemes import scheme_from_spec
from initlab.sweep.cells import Cell, member_init, model_factory
from initlab.sweep.config import CompareConfig
from initlab.sweep.records import CellResult


def train_config(config: CompareConfig) -> TrainConfig:
    """The engine's ``TrainConfig`` of a comparison: derived here and nowhere else."""
    return TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, optimizer=config.optimizer, lr=config.lr,
        momentum=config.momentum if config.optimizer == "sgd" else 0.9, weight_decay=config.weight_decay,
        bias_init=scheme_from_spec(config.bias_init), target=config.target,
    )


def with_validation(config: CompareConfig, dataset: Any) -> Any:
    """``dataset`` with the config's validation split carved out (as is when it has one already)."""
    if hasattr(dataset, "x_val"):
        return dataset
    from initlab.data.split import with_validation as carve

    return carve(dataset, config.val_fraction)


def run_cell(
    config: CompareConfig,
    cell: Cell,
    dataset: Any,
    *,
    resume_blob: bytes | None = None,
    on_checkpoint: Callable[[int, bytes], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CellResult:
    """Train ``cell``'s members on ``dataset`` (its validation split carved if not yet done).

    ``on_checkpoint(epoch, blob)`` receives the serialized state after every epoch;
    ``resume_blob`` continues from one (the result equals the uninterrupted run's).
    """
    def checkpoint(state: dict) -> None:
        on_checkpoint(int(state["epoch"]), state_to_bytes(state))

    result = train_ensemble(
        config, cell, dataset, checkpoint=checkpoint if on_checkpoint is not None else None, progress=progress,
        resume_state=state_from_bytes(resume_blob) if resume_blob is not None else None,
        keep_correct=config.budgets,
    )
    return CellResult.from_ensemble(cell.index, cell.members, result)


def engine_members(cell: Cell) -> list[Member]:
    """The engine's ``Member``s of a cell, in its order."""
    return [Member(member_init(m.scheme), m.seed, name=m.scheme, lr=m.lr) for m in cell.members]


def train_ensemble(config: CompareConfig, cell: Cell, dataset: Any, **train_kwargs: Any):
    """The engine's ``EnsembleResult`` for ``cell``, exactly as ``compare`` trains it (same split,
    members, factory and ``TrainConfig``): how a study retrains a stored comparison."""
    dataset = with_validation(config, dataset)
    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    return train(factory, engine_members(cell), dataset, train_config(config), **train_kwargs)
