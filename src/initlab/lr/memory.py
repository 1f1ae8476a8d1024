"""How many stacked training copies of a model fit in memory at once (``members_per_chunk``)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from initlab.errors import UserError

MEMORY_HEADROOM = 0.75  # share of the available memory the stacked copies may use


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def members_per_chunk(model: nn.Module, x: torch.Tensor, batch_size: int, optimizer: str, wanted: int) -> int:
    """How many stacked copies fit in memory at once (activations + parameters + optimizer state).

    Per copy: activations ``2 * batch * A * 4`` bytes (every module's output kept for backward,
    and its gradient; ``A`` = activation elements per sample, summed over leaf modules, measured
    by one forward pass of a copy) plus parameters, gradients and optimizer state
    ``(2 + k) * P * 4`` (k = 2 for Adam, 1 for SGD with momentum). At most ``MEMORY_HEADROOM`` of
    the available memory is used. ``UserError`` before any training when one copy does not fit.
    A ``checkpointed`` model keeps ``depth/s + s`` layers' activations instead of ``depth``.
    """
    probe = copy.deepcopy(model).eval()
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: sizes.append(out.numel()) if isinstance(out, torch.Tensor) else None
        )
        for m in probe.modules()
        if not any(True for _ in m.children())
    ]
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        probe(x[:1].to(next(probe.parameters()).device))
    for h in hooks:
        h.remove()
    activations = sum(sizes)
    from initlab.engine.checkpointing import Checkpointed, activation_layers

    if isinstance(probe, Checkpointed):  # only the segments' inputs are kept, one segment recomputed at a time
        depth = len(probe.seq)
        activations = math.ceil(activations * activation_layers(depth, probe.segments) / depth)
    params = sum(p.numel() for p in probe.parameters())
    k = 2 if optimizer == "adam" else 1
    per_copy = 4 * (2 * batch_size * activations + (2 + k) * params)
    budget = int(MEMORY_HEADROOM * _available_bytes())
    fit = budget // max(per_copy, 1)
    if fit < 1:
        raise UserError(
            f"one training copy of this model needs about {per_copy / 2**30:.1f} GiB (batch {batch_size} x "
            f"{activations} activation values per sample, {params} parameters); {budget / 2**30:.1f} GiB may be used: "
            "lower batch_size, or wrap an nn.Sequential with initlab.engine.checkpointing.checkpointed(model)"
        )
    return int(min(wanted, fit))
