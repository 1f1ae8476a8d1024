"""``fill_model_``: the one way initlab writes initial values into a model's parameters.

Every path that fills a model goes through it: ``initlab.initialize`` (a plan), the compare
engine's members (a scheme per member), ``initlab.models.build`` (PyTorch's defaults) and
``initlab diagnose --scheme``. Each parameter ``p`` at dotted name ``n`` is filled with

.. math::
    p \\leftarrow \\mathrm{sampler.sample}(p.\\mathrm{shape},\\ \\mathrm{param\\_generator}(seed, n))

drawn on the CPU in float32 and copied to ``p``'s device and dtype (``Scheme.sample``), so
a GPU model gets the same values as a CPU one, and the same scheme at the same seed gives the
same bits for a parameter whatever path wrote it (common random numbers across the members of
a paired comparison). Parameters not named keep their values; the global RNG is never used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import nn

from initlab.errors import UserError
from initlab.seeding import param_generator


class Sampler(Protocol):
    """Anything that draws a tensor of a shape from a generator: a ``Scheme``, a plan entry's draw."""

    def sample(self, shape: tuple[int, ...], *, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor: ...


def fill_model_(model: nn.Module, samplers: Mapping[str, Sampler], *, seed: int) -> nn.Module:
    """Fill each parameter named in ``samplers`` from its sampler and ``param_generator(seed, name)``.

    Args:
        model: any ``torch.nn.Module``; filled in place (no autograd) and returned.
        samplers: dotted parameter name -> what fills it (a ``Scheme`` or any ``Sampler``).
        seed: the seed every parameter's generator derives from, with the parameter's name.

    Raises:
        UserError: a name the model has no parameter for.
    """
    params = dict(model.named_parameters())
    for name, sampler in samplers.items():
        if name not in params:
            raise UserError(f"parameter {name!r}: the model does not have it; its parameters: {_listing(params)}")
        tensor = params[name]
        values = sampler.sample(tuple(tensor.shape), generator=param_generator(seed, name), dtype=tensor.dtype)
        with torch.no_grad():
            tensor.copy_(values)
    return model


def _listing(params: Mapping[str, torch.Tensor], limit: int = 8) -> str:
    names = list(params)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"
