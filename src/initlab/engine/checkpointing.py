"""Gradient checkpointing for very deep sequential models: memory ~ sqrt(depth) instead of depth.

A 10,000-layer plain MLP of width 128 keeps 10,000 x batch x 128 x 2 activations for the
backward pass: 650 MB per member at batch 64 in float32, times the members of an ensemble.
``checkpointed(model, segments)`` wraps an ``nn.Sequential`` so that training keeps only the
inputs of ``segments`` segments and recomputes each segment's activations during the backward
pass (``torch.utils.checkpoint.checkpoint_sequential``, non-reentrant): activation memory about
``depth / segments + segments`` layers instead of ``depth``, for about one extra forward pass.
``segments = round(sqrt(depth))`` minimises it (Chen, Xu, Zhang & Guestrin 2016, Training deep
nets with sublinear memory cost). In eval mode, or without gradients, it is the plain model.

The wrapper is a plain module: ``initlab.engine.train`` runs it on its one-model-at-a-time
backend (the batched-matmul MLP backend keeps every activation by design), and so does any
PyTorch training loop. Parameter names gain a ``seq.`` prefix; ``state_dict`` of the wrapped
model loads with ``model.seq.load_state_dict``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from initlab.errors import UserError


class Checkpointed(nn.Module):
    """``seq`` run as ``segments`` checkpointed segments while training with gradients."""

    def __init__(self, seq: nn.Sequential, segments: int) -> None:
        super().__init__()
        self.seq = seq
        self.segments = segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            return checkpoint_sequential(self.seq, self.segments, x, use_reentrant=False)
        return self.seq(x)


def default_segments(depth: int) -> int:
    """round(sqrt(depth)), at least 1: the segment count that minimises depth/s + s."""
    return max(1, round(math.sqrt(depth)))


def checkpointed(model: nn.Module, segments: int | None = None) -> Checkpointed:
    """``model`` (an ``nn.Sequential``) wrapped for gradient checkpointing; its modules are shared, not copied."""
    if not isinstance(model, nn.Sequential):
        raise UserError(f"gradient checkpointing needs an nn.Sequential; got {type(model).__name__}")
    n = len(model)
    segments = default_segments(n) if segments is None else segments
    if isinstance(segments, bool) or not isinstance(segments, int) or not 1 <= segments <= max(n, 1):
        raise UserError(f"segments must be an integer in 1..{n} (the model's modules); got {segments!r}")
    return Checkpointed(model, segments)


def activation_layers(depth: int, segments: int | None) -> float:
    """Layers' activations kept at once for a backward pass: ``depth`` plain, ``depth/s + s`` checkpointed."""
    if segments is None:
        return float(depth)
    return depth / segments + segments
