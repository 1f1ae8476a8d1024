"""What a compare checks and chooses before it touches the store: scheme samples, the memory a
chunk of members needs (hence the chunk size), and the intra-op thread count."""

from __future__ import annotations

import os
from typing import Any

from initlab.sweep.chunks import build_model_template, member_init
from initlab.sweep.config import CompareConfig

# Below this many FLOPs per ensemble step, a second intra-op thread costs more in
# synchronisation than it gains (measured: a 48-layer tanh MLP, 21 members, ran 1.7 s per
# epoch on one thread and ~100 s on two of a busy 2-core machine).
SMALL_STEP_FLOPS = 2e9


def preflight(config: CompareConfig, dataset: Any) -> int:
    """Checks made before the store is touched; returns the members per chunk to train.

    Every scheme draws a sample (``Scheme.sample`` refuses values absurd for float32), and for
    a built-in model the memory estimate (``initlab.engine.memory``) must fit: the chunk size
    is the largest ensemble that fits, at most ``config.chunk_size``; when even one member
    does not fit, ``UserError`` names the estimate, the limit and what to lower.
    """
    from initlab.engine import memory
    from initlab.models import architectures
    from initlab.seeding import derive_generator

    for spec in (*config.schemes, config.bias_init):
        scheme = member_init(spec)
        if not hasattr(scheme, "sample"):  # a per-layer policy: its schemes are the registry's
            continue
        # a weight, a conv kernel or a bias: whichever the scheme can fill
        shape = next((s for s in ((64, 64), (64, 16, 3, 3), (64,)) if scheme.fits(s)), None)
        if shape is not None:
            scheme.sample(shape, generator=derive_generator(0, "preflight", spec))
    if config.model not in architectures():
        return config.chunk_size
    footprint = memory.model_footprint(
        config.model,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        width=config.width,
        depth=config.depth,
        activation=config.activation,
        **config.model_options,
    )
    tensors = [
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
        getattr(dataset, "x_val", None),
        getattr(dataset, "y_val", None),
    ]
    data_bytes = sum(t.numel() * t.element_size() for t in tensors if t is not None)
    training = dict(
        batch_size=config.batch_size,
        optimizer=config.optimizer,
        momentum=config.momentum,
        eval_batch_size=min(1024, dataset.x_test.shape[0]),
        data_bytes=data_bytes,
    )
    cap = min(config.chunk_size, len(config.members))
    size = memory.members_that_fit(footprint, cap, **training)
    memory.check_fits(
        memory.training_estimate(footprint, members=size, **training),
        what="compare",
        lower="--width, --depth or --batch-size (--chunk-size is then 1)"
        if size == 1
        else "--chunk-size, --width or --batch-size",
    )
    return size


def choose_threads(config: CompareConfig, dataset: Any, template: Any = None, chunk_size: int | None = None) -> int:
    """Intra-op threads for training: 1 for small steps, every core for large ones."""
    model = template if template is not None else build_model_template(config, dataset)
    params = sum(p.numel() for p in model.parameters())
    members = min(chunk_size or config.chunk_size, len(config.members))
    flops = 6 * params * config.batch_size * members
    return 1 if flops < SMALL_STEP_FLOPS else max(1, os.cpu_count() or 1)
