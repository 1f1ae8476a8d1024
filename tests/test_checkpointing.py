"""Gradient checkpointing: the same gradients as the plain model, less memory kept, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import initlab
from initlab.engine.checkpointing import (
    activation_layers,
    checkpointed,
    default_segments,
)
from initlab.errors import UserError


def deep_tanh(depth: int = 60) -> nn.Sequential:
    net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(16, 16), nn.Tanh())], nn.Linear(16, 4))
    initlab.initialize(net, seed=0)
    return net.double()


def test_checkpointed_gradients_equal_the_plain_ones():
    net = deep_tanh()
    wrapped = checkpointed(net)
    assert wrapped.segments == default_segments(len(net)) == 11
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.arange(8) % 4
    plain = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    again = torch.autograd.grad(nn.functional.cross_entropy(wrapped(x), y), list(wrapped.parameters()))
    for a, b in zip(plain, again):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_checkpointing_keeps_fewer_tensors_for_backward():
    # Count the tensors autograd saves during the forward pass (saved_tensors_hooks).
    def saved(model, x):
        count = 0

        def pack(t):
            nonlocal count
            count += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return count

    net = deep_tanh(100)
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    plain, wrapped = saved(net, x), saved(checkpointed(net), x)
    assert wrapped < plain / 5  # measured: 2-3 per layer plain, ~1 per segment checkpointed
    assert activation_layers(10000, 100) == 200 and activation_layers(10000, None) == 10000


def test_bad_input():
    with pytest.raises(UserError, match="needs an nn.Sequential"):
        checkpointed(nn.Linear(3, 3))
    with pytest.raises(UserError, match=r"segments must be an integer in 1..3"):
        checkpointed(nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2)), segments=5)


def test_suggest_lr_counts_checkpointed_activations_and_trains_the_wrapper():
    from initlab.lr import members_per_chunk, suggest_lr

    net = deep_tanh(100).float()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 4
    budget = 10**9
    import initlab.lr.memory as lr_module

    original = lr_module._available_bytes
    try:
        lr_module._available_bytes = lambda: budget
        plain = members_per_chunk(net, x, 64, "adam", 10**6)
        wrapped = members_per_chunk(checkpointed(net), x, 64, "adam", 10**6)
    finally:
        lr_module._available_bytes = original
    assert wrapped > 2 * plain
    result = suggest_lr(checkpointed(net), x, y, grid=[1e-3, 1e-2], steps=2)
    assert result.lr in (1e-3, 1e-2)
