"""Sparse schemes: most incoming weights of a unit are exactly zero."""

from __future__ import annotations

import math

import torch

from initlab.schemes.draws import draw_normal
from initlab.schemes.registry import Param, Shape, register


def _keep_mask(rows: int, cols: int, keep: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A (rows, cols) bool mask with exactly ``keep`` True per row, positions from ``generator``."""
    order = torch.rand((rows, cols), generator=generator, device=device).argsort(dim=1)
    mask = torch.zeros((rows, cols), dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :keep], True)
    return mask


@register(
    "sparse",
    params=(
        Param("sparsity", 0.1, lambda s: 0 <= s < 1, "a fraction in [0, 1)"),
        Param("std", None, lambda s: s > 0, "a number > 0, or None for He variance", optional=True),
    ),
    formula="per unit: ceil(sparsity·fan_in) zeros; others N(0, std²), std = sqrt(2/kept) if None",
    reference="Martens 2010 (sparse init); torch.nn.init.sparse_ (which zeroes per column)",
)
def sparse(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, sparsity: float = 0.1, std: float | None = None
) -> torch.Tensor:
    """Each unit keeps a fraction 1 − sparsity of its incoming weights; the rest are zero.

    The weight is viewed as (out, fan_in). Per row, exactly ``ceil(sparsity · fan_in)`` entries
    are zero, at positions drawn from the generator; the k = fan_in − zeros kept entries are

    .. math::
        W_{ij} \\sim \\mathcal{N}(0, \\sigma^2), \\quad
        \\sigma = \\begin{cases} \\text{std} & \\text{given} \\\\ \\sqrt{2 / k} & \\text{otherwise} \\end{cases}

    so by default each unit's incoming squared norm has expectation 2: He variance for the layer.
    Unlike ``torch.nn.init.sparse_`` (2-D only, zeros counted per *column*, std 0.01) the zeros
    are counted per unit (row) and conv kernels are accepted. Source: Martens (2010).
    """
    rows = shape[0]
    fan_in = math.prod(shape[1:])
    zeros = math.ceil(sparsity * fan_in)
    keep = fan_in - zeros
    sigma = std if std is not None else math.sqrt(2.0 / max(keep, 1))
    values = draw_normal((rows, fan_in), generator, dtype, 0.0, sigma)
    mask = _keep_mask(rows, fan_in, keep, generator, values.device)
    return (values * mask).reshape(shape)


@register(
    "sparse_martens",
    params=(
        Param("k", 15, lambda k: k > 0, "an integer > 0", kind=int),
        Param("std", 1.0, lambda s: s > 0, "a number > 0"),
    ),
    formula="exactly min(k, fan_in) nonzero incoming weights per unit, N(0, std²)",
    reference="Martens 2010, Deep learning via Hessian-free optimization, §5",
)
def sparse_martens(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, k: int = 15, std: float = 1.0
) -> torch.Tensor:
    """Martens' sparse init: every unit has exactly k nonzero incoming weights.

    .. math::
        |\\{j : W_{ij} \\ne 0\\}| = \\min(k, \\text{fan\\_in}), \\quad W_{ij} \\sim \\mathcal{N}(0, \\text{std}^2)

    Martens (2010) uses k = 15 and unit Gaussians, which lets units differ a lot from each other
    without saturating (tanh/sigmoid nets trained with Hessian-free optimization).
    """
    rows = shape[0]
    fan_in = math.prod(shape[1:])
    keep = min(k, fan_in)
    values = draw_normal((rows, fan_in), generator, dtype, 0.0, std)
    mask = _keep_mask(rows, fan_in, keep, generator, values.device)
    return (values * mask).reshape(shape)
