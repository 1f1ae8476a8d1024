"""Run one chunk: train its members together and return a typed ``ChunkResult``.

Both backends call ``run_chunk``; only the driver turns its result into store records
(``ChunkResult.store_records``) and commits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab.engine import Member, state_from_bytes, state_to_bytes, train
from initlab.sweep.chunks import MemberChunk, member_init, model_factory
from initlab.sweep.config import CompareConfig
from initlab.sweep.records import ChunkResult


def with_validation(config: CompareConfig, dataset: Any) -> Any:
    """``dataset`` with the config's validation split carved out (as is when it has one already).

    Only classification is split: the split is stratified by class label and it serves lr
    selection on validation accuracy, which regression (float targets) and lm (token targets)
    do not have (``CompareConfig`` refuses ``lr_grid`` for them).
    """
    if hasattr(dataset, "x_val") or config.task != "classification":
        return dataset
    from initlab.data.split import with_validation as carve

    return carve(dataset, config.val_fraction)


def run_chunk(
    config: CompareConfig,
    chunk: MemberChunk,
    dataset: Any,
    *,
    resume_blob: bytes | None = None,
    on_checkpoint: Callable[[int, bytes], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str | None = None,
    checkpoint_due: Callable[[int], bool] | None = None,
) -> ChunkResult:
    """Train ``chunk``'s members on ``dataset`` (its validation split carved if not yet done).

    ``on_checkpoint(epoch, blob)`` receives the serialized state after every epoch;
    ``resume_blob`` continues from one (the result equals the uninterrupted run's).
    ``checkpoint_due(epoch)`` says after which epochs to serialize it (None: every epoch).
    ``device``: where to train (``initlab.engine.train``'s; None: where the data lies).
    """

    def checkpoint(state: dict) -> None:
        if checkpoint_due is None or checkpoint_due(int(state["epoch"])):
            on_checkpoint(int(state["epoch"]), state_to_bytes(state))

    result = train_ensemble(
        config,
        chunk,
        dataset,
        checkpoint=checkpoint if on_checkpoint is not None else None,
        progress=progress,
        resume_state=state_from_bytes(resume_blob) if resume_blob is not None else None,
        keep_correct=config.budgets,
        device=device,
    )
    scale, test_var = _to_original_units(dataset) if config.task == "regression" else (1.0, float("nan"))
    return ChunkResult.from_ensemble(
        chunk.index, chunk.members, result, task=config.task, scale=scale, test_var=test_var
    )


def _to_original_units(dataset: Any) -> tuple[float, float]:
    """(σ², Var(y_test)) of a one-target regression dataset: MSE_std · σ² is the MSE in its units
    (the loaders standardize targets with training statistics, ``meta["target_standardize"]``)."""
    stats = (getattr(dataset, "meta", None) or {}).get("target_standardize") or {}
    std, test_var = stats.get("std") or [1.0], stats.get("test_var") or [float("nan")]
    return float(std[0]) ** 2, float(test_var[0])


def engine_members(chunk: MemberChunk) -> list[Member]:
    """The engine's ``Member``s of a chunk, in its order."""
    return [Member(member_init(m.scheme), m.seed, name=m.scheme, lr=m.lr) for m in chunk.members]


def train_ensemble(config: CompareConfig, chunk: MemberChunk, dataset: Any, **train_kwargs: Any):
    """The engine's ``EnsembleResult`` for ``chunk``, exactly as ``compare`` trains it (same split,
    members, factory, ``TrainConfig`` and autocast): how a study retrains a stored comparison."""
    dataset = with_validation(config, dataset)
    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    train_kwargs.setdefault("autocast", config.autocast)
    return train(factory, engine_members(chunk), dataset, config.train_config(), **train_kwargs)
