"""The local backend of ``compare``: pending chunks one after another in this process, each
checkpointed in flight and committed whole (``initlab.sweep.ray_backend`` is the other)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

from initlab.sweep.chunks import MemberChunk
from initlab.sweep.config import CompareConfig
from initlab.sweep.records import commit_chunk
from initlab.sweep.runner import run_chunk


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_local(
    store,
    experiment_id: str,
    config: CompareConfig,
    chunks: list[MemberChunk],
    dataset: Any,
    progress: Callable[[int], None],
    *,
    device: str | None = None,
    checkpoint_every: str | None = None,
) -> None:
    """Run pending chunks one after another in this process, on ``device``; checkpoint a chunk in
    flight as ``checkpoint_every`` says (``initlab.sweep.checkpoints``; default by time)."""
    from initlab.sweep.checkpoints import CheckpointPolicy

    policy = CheckpointPolicy.parse(checkpoint_every)
    for chunk in chunks:
        policy.start()
        saved = store.load_checkpoint(experiment_id, chunk.key)
        done_before = 0
        if saved is not None:
            done_before = saved[0] * math.ceil(dataset.x_train.shape[0] / config.batch_size)
            progress(done_before)

        def on_checkpoint(epoch: int, blob: bytes, _chunk=chunk) -> None:
            store.save_checkpoint(experiment_id, _chunk.key, epoch, blob)

        last = [done_before]

        def on_step(done: int, total: int, _last: list[int] = last) -> None:
            progress(done - _last[0])
            _last[0] = done

        result = run_chunk(
            config,
            chunk,
            dataset,
            resume_blob=saved[1] if saved else None,
            on_checkpoint=on_checkpoint,
            progress=on_step,
            device=device,
            checkpoint_due=lambda epoch: policy.due(epoch, config.epochs),
        )
        commit_chunk(store, experiment_id, chunk, result)
