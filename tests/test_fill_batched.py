"""Batched orthogonal draws (``initlab.schemes.fill.orthogonal_batch``) give the per-parameter bits.

``initlab.initialize`` draws the orthogonal entries of one shape, gain and dtype together (one
batched QR per chunk); every parameter must still come out bit-identical to drawing it alone from
``param_generator(seed, name)`` (the invariant of tests/test_fill.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import initlab
from initlab.errors import UserError
from initlab.schemes import get_scheme
from initlab.schemes.fill import BATCH_SIZE, orthogonal_batch
from initlab.seeding import param_generator


def one_by_one(shape, seeds, dtype, gain):
    spec = get_scheme("orthogonal", gain=gain)
    return [spec.sample(shape, generator=torch.Generator().manual_seed(s), dtype=dtype) for s in seeds]


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((16, 16), torch.float32), ((8, 24), torch.float32), ((24, 8), torch.float64), ((6, 3, 3, 3), torch.bfloat16)],
)
def test_batched_orthogonal_is_bit_identical_to_one_draw_per_generator(shape, dtype):
    seeds = [0, 1, 7, 123]
    stacked = orthogonal_batch(shape, [torch.Generator().manual_seed(s) for s in seeds], dtype, 1.3)
    assert stacked.shape == (len(seeds), *shape) and stacked.dtype == dtype
    for got, expected in zip(stacked, one_by_one(shape, seeds, dtype, 1.3)):
        assert torch.equal(got, expected)


def test_batched_orthogonal_refuses_overflowing_gains_like_one_draw():
    with pytest.raises(UserError, match="draws"):
        orthogonal_batch((4, 4), [torch.Generator()], torch.float16, 1e6)


def test_initialize_auto_on_a_deep_chain_equals_each_parameter_drawn_alone():
    # More hidden layers than one batch holds, plus non-square first and last layers.
    depth = BATCH_SIZE + 20
    layers: list[nn.Module] = [nn.Linear(5, 12), nn.Tanh()]
    for _ in range(depth):
        layers += [nn.Linear(12, 12), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(12, 3))
    plan = initlab.initialize(model, "auto", seed=11)
    orthogonal = [e for e in plan.entries if e.scheme == "orthogonal"]
    assert len(orthogonal) > BATCH_SIZE
    for entry in plan.entries:
        param = model.get_parameter(entry.param)
        alone = get_scheme(entry.scheme, **entry.params).sample(
            tuple(param.shape), generator=param_generator(11, entry.param), dtype=param.dtype
        )
        assert torch.equal(param, alone), entry.param
