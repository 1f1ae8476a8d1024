"""Run one cell: train its members together and turn the result into plain records.

Both backends call ``run_cell``; it returns plain dicts (picklable, backend-neutral) and only
the driver turns them into store records and commits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab.schemes import scheme_from_spec
from initlab.engine import Member, TrainConfig, state_from_bytes, state_to_bytes, train
from initlab.sweep.cells import Cell, member_init, model_factory
from initlab.sweep.config import CompareConfig


def train_config(config: CompareConfig) -> TrainConfig:
    from initlab.tasks import metric_for

    # the engine's target is a test accuracy; for the other tasks steps to target come from the report
    return TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, optimizer=config.optimizer, lr=config.lr,
        momentum=config.momentum if config.optimizer == "sgd" else 0.9, weight_decay=config.weight_decay,
        bias_init=scheme_from_spec(config.bias_init),
        target=config.target if config.task == "classification" else None, loss=metric_for(config.task).loss,
    )


def _to_original_units(dataset: Any) -> tuple[float, float]:
    """(σ², Var(y_test)) of a one-target regression dataset: MSE_std · σ² is the MSE in its units."""
    stats = dataset.meta.get("target_standardize") or {}
    std, test_var = stats.get("std") or [1.0], stats.get("test_var") or [float("nan")]
    return float(std[0]) ** 2, float(test_var[0])


def run_cell(
    config: CompareConfig,
    cell: Cell,
    dataset: Any,
    *,
    resume_blob: bytes | None = None,
    on_checkpoint: Callable[[int, bytes], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[dict]]:
    """Train ``cell``'s members on ``dataset``; ``{"runs": [...], "epochs": [...]}`` as dicts.

    ``on_checkpoint(epoch, blob)`` receives the serialized state after every epoch;
    ``resume_blob`` continues from one (the result equals the uninterrupted run's).
    """
    members = [Member(member_init(scheme), seed, name=scheme) for scheme, seed in cell.members]
    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    def checkpoint(state: dict) -> None:
        on_checkpoint(int(state["epoch"]), state_to_bytes(state))
    result = train(
        factory, members, dataset, train_config(config),
        checkpoint=checkpoint if on_checkpoint is not None else None, progress=progress,
        resume_state=state_from_bytes(resume_blob) if resume_blob is not None else None,
    )
    from initlab.tasks import r_squared

    scale, test_var = _to_original_units(dataset) if config.task == "regression" else (1.0, float("nan"))
    runs, epochs = [], []
    for (scheme, seed), m in zip(cell.members, result.members):
        last = m.records[-1]
        extra = {"backend": result.backend, "cell": cell.index, "steps_per_epoch": result.steps_per_epoch}
        if result.backend_reason:
            extra["backend_reason"] = result.backend_reason
        if config.task == "regression":  # losses in the target's own units, R² beside them
            extra["r2"] = r_squared(last.test_loss * scale, test_var)
        runs.append(dict(
            scheme=scheme, seed=seed, status=m.status, test_acc=last.test_acc, test_loss=last.test_loss * scale,
            train_loss=last.train_loss * scale, train_acc=last.train_acc, diverged_step=m.diverged_step,
            wall_time=result.wall_time, extra=extra,
        ))
        for r in m.records:
            record = r.to_dict()
            record["train_loss"], record["test_loss"] = r.train_loss * scale, r.test_loss * scale
            epochs.append(dict(scheme=scheme, seed=seed, **record))
    return {"runs": runs, "epochs": epochs}
