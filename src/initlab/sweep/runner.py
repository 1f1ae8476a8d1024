"""Run one cell: train its members together and turn the result into plain records.

Both backends call ``run_cell``; it returns plain dicts (picklable, backend-neutral) and only
the driver turns them into store records and commits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from initlab.engine import Member, state_from_bytes, state_to_bytes, train
from initlab.sweep.cells import Cell, member_init, model_factory
from initlab.sweep.config import CompareConfig


def run_cell(
    config: CompareConfig,
    cell: Cell,
    dataset: Any,
    *,
    resume_blob: bytes | None = None,
    on_checkpoint: Callable[[int, bytes], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str | None = None,
    checkpoint_due: Callable[[int], bool] | None = None,
) -> dict[str, list[dict]]:
    """Train ``cell``'s members on ``dataset``; ``{"runs": [...], "epochs": [...]}`` as dicts.

    ``on_checkpoint(epoch, blob)`` receives the serialized state after every epoch;
    ``resume_blob`` continues from one (the result equals the uninterrupted run's).
    ``checkpoint_due(epoch)`` says after which epochs to serialize it (None: every epoch).
    ``device``: where to train (``initlab.engine.train``'s; None: where the data lies).
    """
    members = [Member(member_init(scheme), seed, name=scheme) for scheme, seed in cell.members]
    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    def checkpoint(state: dict) -> None:
        if checkpoint_due is None or checkpoint_due(int(state["epoch"])):
            on_checkpoint(int(state["epoch"]), state_to_bytes(state))
    result = train(
        factory, members, dataset, config.train_config(),
        checkpoint=checkpoint if on_checkpoint is not None else None, progress=progress,
        resume_state=state_from_bytes(resume_blob) if resume_blob is not None else None, device=device,
        autocast=config.autocast,
    )
    runs, epochs = [], []
    for (scheme, seed), m in zip(cell.members, result.members):
        last = m.records[-1]
        runs.append(dict(
            scheme=scheme, seed=seed, status=m.status, test_acc=last.test_acc, test_loss=last.test_loss,
            train_loss=last.train_loss, train_acc=last.train_acc, diverged_step=m.diverged_step,
            wall_time=result.wall_time, extra={"backend": result.backend, "cell": cell.index,
                                               "steps_per_epoch": result.steps_per_epoch,
                                               "device": result.state["device"]},
        ))
        for r in m.records:
            epochs.append(dict(scheme=scheme, seed=seed, **r.to_dict()))
    return {"runs": runs, "epochs": epochs}
