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

Batched draws: a sampler may offer ``batch_key(shape, dtype)`` (a hashable key, or None) and
``sample_batch(shape, generators, dtype)``; parameters whose keys are equal are then drawn
together, each still from its own generator, giving the same bits as one by one. Orthogonal
weights use it (``orthogonal_batch``): a 10,000-layer plain chain needs 10,000 QR
decompositions, and one batched ``torch.linalg.qr`` per chunk saves the per-call overhead.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

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
    batches: dict[Hashable, list[str]] = {}
    for name, sampler in samplers.items():
        if name not in params:
            raise UserError(f"parameter {name!r}: the model does not have it; its parameters: {_listing(params)}")
        tensor = params[name]
        key = _batch_key(sampler, tuple(tensor.shape), tensor.dtype)
        if key is not None:
            batches.setdefault(key, []).append(name)
            continue
        values = sampler.sample(tuple(tensor.shape), generator=param_generator(seed, name), dtype=tensor.dtype)
        with torch.no_grad():
            tensor.copy_(values)
    for names in batches.values():
        for start in range(0, len(names), BATCH_SIZE):
            chunk = names[start : start + BATCH_SIZE]
            first = params[chunk[0]]
            generators = [param_generator(seed, n) for n in chunk]
            stacked = samplers[chunk[0]].sample_batch(tuple(first.shape), generators, first.dtype)  # type: ignore[attr-defined]
            with torch.no_grad():
                for name, values in zip(chunk, stacked):
                    params[name].copy_(values)
    return model


BATCH_SIZE = 256  # parameters drawn together: 256 x 128 x 128 float32 = 16 MiB per stack


def _batch_key(sampler: Any, shape: tuple[int, ...], dtype: torch.dtype) -> Hashable | None:
    key = getattr(sampler, "batch_key", None)
    return None if key is None else key(shape, dtype)


def orthogonal_batch(
    shape: tuple[int, ...], generators: Sequence[torch.Generator], dtype: torch.dtype, gain: float
) -> torch.Tensor:
    """``len(generators)`` draws of ``orthogonal(gain)`` for ``shape``, stacked: the same bits as
    ``get_scheme("orthogonal", gain=gain).sample(shape, generator=g, dtype=dtype)`` for each ``g``.

    Each matrix's Gaussian comes from its own generator (float32, as every scheme draws); the
    QR decompositions run as one batched ``torch.linalg.qr`` (LAPACK per matrix, so the same
    factors), and the signs of diag(R) are folded in as ``torch.nn.init.orthogonal_`` does.
    Non-finite or overflowing values are refused as ``Scheme.sample`` refuses them.
    """
    from initlab.schemes import get_scheme
    from initlab.schemes.draws import draw_normal

    rows, cols = shape[0], math.prod(shape[1:])
    flat = torch.stack([draw_normal((rows, cols), g, torch.float32, 0.0, 1.0) for g in generators])
    if rows < cols:
        flat = flat.transpose(-2, -1)
    q, r = torch.linalg.qr(flat)
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
    if rows < cols:
        q = q.transpose(-2, -1)
    values: torch.Tensor = (q * gain).reshape(len(generators), *shape).to(dtype)
    largest = float(values.abs().max())
    if not (math.isfinite(largest) and largest <= math.sqrt(torch.finfo(dtype).max)):
        get_scheme("orthogonal", gain=gain)._check_range(values, dtype)  # raises its one-line message
    return values


def _listing(params: Mapping[str, torch.Tensor], limit: int = 8) -> str:
    names = list(params)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"
