"""Model factories for ``initlab compare --model mymodels:NAME`` (docs/your-own-problem.md).

Run from this folder (the working directory is searched for the module), or put it on PYTHONPATH.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


class ClippedMLP(nn.Module):
    """An MLP whose hidden activations are rescaled when they grow too large.

    The ``if`` reads a tensor's value in Python: ``torch.func.vmap`` cannot stack members of such
    a model, so ``compare`` trains them one by one on the loop backend and says so.
    """

    def __init__(self, in_features: int, outputs: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(sizes[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
            if float(h.abs().max()) > 100.0:  # data-dependent Python control flow
                h = h / h.abs().max() * 100.0
        return self.out(h)


def clipped_mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2) -> nn.Module:
    """``input_shape``: one sample's shape, e.g. ``(30,)``; ``num_classes``: outputs (classes,
    regression targets or vocabulary size); ``width``/``depth`` come from ``--width``/``--depth``."""
    return ClippedMLP(math.prod(input_shape), num_classes, width, depth)
