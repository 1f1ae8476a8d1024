"""initlab's own μP-ready MLP: the per-layer multipliers are built into the forward.

Tensor Programs V (Yang et al. 2022, Sec. 3 and App. E) writes a parametrization as
``W = a · w`` with ``w`` initialized at variance ``b`` and trained at learning rate ``c``.
For Adam, whose update ignores the gradient's scale (up to ``eps``), ``(a, b, c)`` and
``(a·k, b/k², c/k)`` train identically, so μP's per-layer Adam rates (Table 3: hidden and
readout matrices at ``lr / ñ``) can be moved into forward multipliers ``a = 1/ñ`` and one
global learning rate: exactly what an ensemble engine with one lr per member needs. The
stored weights are then divided by ``a`` so that ``W = a · w`` starts at μP's init.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import cast

import torch
from torch import nn

from initlab.activations import activation_module
from initlab.errors import UserError


class MupMLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, no biases; layer ``i`` computes
    ``linear_i(multipliers[i] · h)`` (= ``multipliers[i] · W_i h``)."""

    def __init__(
        self,
        in_features: int,
        width: int,
        num_classes: int,
        depth: int = 2,
        activation: str = "relu",
        multipliers: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth + [num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairwise(sizes))
        mults = tuple(float(m) for m in (multipliers or [1.0] * len(self.layers)))
        if len(mults) != len(self.layers) or any(not m > 0 for m in mults):
            raise UserError(f"multipliers: {len(self.layers)} positive numbers (one per layer); got {multipliers!r}")
        self.multipliers = mults
        self.act = activation_module(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h * self.multipliers[i]) if self.multipliers[i] != 1.0 else layer(h)
            if i < last:
                h = self.act(h)
        return h


def adam_multipliers(n_layers: int, width: int, base_width: int) -> tuple[float, ...]:
    """Forward multipliers that turn Table 3's Adam rates into one global lr: input 1, hidden and readout 1/ñ."""
    ratio = width / base_width
    return (1.0,) + (1.0 / ratio,) * (n_layers - 1)


def initialize_abc(model: MupMLP, policy: str, seed: int, base_width: int | None = None):
    """``initlab.initialize`` by ``policy``, then each weight divided by its layer's multiplier
    (so the effective weight ``a · w`` is the policy's); returns the plan."""
    from initlab.policy import initialize

    plan = initialize(model, policy, seed=seed, base_width=base_width)
    with torch.no_grad():
        for layer, mult in zip(model.layers, model.multipliers):
            if mult != 1.0:
                cast(torch.Tensor, layer.weight).div_(mult)
    return plan
