"""Fixed-range and elementwise schemes: any shape, biases included, not fan-scaled.

The article's "random" (``random_uniform``), "Gaussian" (``random_normal``), "constant" and
"zero", and torch's ``uniform_``, ``normal_``, ``trunc_normal_``, ``ones_``.
"""

from __future__ import annotations

import torch

from initlab.schemes.draws import draw_full, draw_normal, draw_trunc_normal, draw_uniform
from initlab.schemes.params import MEAN, a_below_b, any_number, nonnegative_number, positive_number
from initlab.schemes.registry import Param, Shape, register


@register(
    "random_uniform",
    params=(Param("limit", 0.05, positive_number, "a number > 0"),),
    formula="U(-limit, limit), limit = 0.05 (not fan-scaled)",
    reference="the article's 'random'; Keras RandomUniform(-0.05, 0.05)",
    min_dim=1,
    aliases=("random",),
)
def random_uniform(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, limit: float = 0.05
) -> torch.Tensor:
    """The article's "random": a fixed range, independent of the layer's size.

    .. math:: W \\sim \\mathcal{U}(-\\text{limit}, \\text{limit})

    Source: Keras ``RandomUniform`` defaults (minval=-0.05, maxval=0.05).
    """
    return draw_uniform(shape, generator, dtype, -limit, limit)


@register(
    "random_normal",
    params=(MEAN, Param("std", 0.01, positive_number, "a number > 0")),
    formula="N(mean, std²), std = 0.01 (not fan-scaled)",
    reference="the article's 'Gaussian'; Krizhevsky et al. 2012 used N(0, 0.01²)",
    min_dim=1,
    aliases=("gaussian",),
)
def random_normal(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, mean: float = 0.0, std: float = 0.01
) -> torch.Tensor:
    """The article's "Gaussian": a fixed std, independent of the layer's size.

    .. math:: W \\sim \\mathcal{N}(\\text{mean}, \\text{std}^2), \\quad \\text{std} = 0.01

    Source: Krizhevsky et al. (2012) (AlexNet's N(0, 0.01²)).
    """
    return draw_normal(shape, generator, dtype, mean, std)


@register(
    "uniform",
    params=(Param("a", 0.0, any_number, "any finite number < b"), Param("b", 1.0, any_number, "any finite number > a")),
    formula="U(a, b)",
    reference="torch.nn.init.uniform_",
    min_dim=1,
    torch_equivalent="uniform_",
    constraint=a_below_b,
)
def uniform(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, a: float = 0.0, b: float = 1.0
) -> torch.Tensor:
    """Uniform on [a, b], torch's ``uniform_``.

    .. math:: W \\sim \\mathcal{U}(a, b)
    """
    return draw_uniform(shape, generator, dtype, a, b)


@register(
    "normal",
    params=(MEAN, Param("std", 1.0, nonnegative_number, "a number >= 0")),
    formula="N(mean, std²)",
    reference="torch.nn.init.normal_",
    min_dim=1,
    torch_equivalent="normal_",
)
def normal(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """Normal, torch's ``normal_``.

    .. math:: W \\sim \\mathcal{N}(\\text{mean}, \\text{std}^2)
    """
    return draw_normal(shape, generator, dtype, mean, std)


@register(
    "trunc_normal",
    params=(
        MEAN,
        Param("std", 1.0, positive_number, "a number > 0"),
        Param("a", -2.0, any_number, "any finite number < b (absolute lower bound)"),
        Param("b", 2.0, any_number, "any finite number > a (absolute upper bound)"),
    ),
    formula="N(mean, std²) truncated to [a, b] (absolute bounds)",
    reference="torch.nn.init.trunc_normal_",
    min_dim=1,
    aliases=("truncated_normal",),
    torch_equivalent="trunc_normal_",
    constraint=a_below_b,
)
def trunc_normal(
    shape: Shape,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
) -> torch.Tensor:
    """Truncated normal with torch's semantics: ``a`` and ``b`` are absolute bounds, not in stds.

    .. math:: W \\sim \\mathcal{N}(\\text{mean}, \\text{std}^2)\\ \\big|\\ a \\le W \\le b

    Rejection sampling as ``torch.nn.init.trunc_normal_`` (torch 2.13): same generator state, same values.
    """
    return draw_trunc_normal(shape, generator, dtype, mean, std, a, b)


@register(
    "constant",
    params=(Param("val", 0.01, any_number, "any finite number"),),
    formula="W = val (default 0.01)",
    reference="the article's 'constant'; torch.nn.init.constant_",
    min_dim=1,
    torch_equivalent="constant_",
)
def constant(shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, val: float = 0.01) -> torch.Tensor:
    """Every entry equals ``val``: all units of a layer compute the same function (no symmetry breaking).

    .. math:: W_{ij} = \\text{val}
    """
    return draw_full(shape, generator, dtype, val)


@register(
    "zeros",
    formula="W = 0",
    reference="the article's 'zero'; torch.nn.init.zeros_",
    min_dim=1,
    aliases=("zero",),
    torch_equivalent="zeros_",
)
def zeros(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """All zero: the default for biases; for weights, no signal and no symmetry breaking.

    .. math:: W_{ij} = 0
    """
    return draw_full(shape, generator, dtype, 0.0)


@register(
    "ones",
    formula="W = 1",
    reference="torch.nn.init.ones_ (normalization gains)",
    min_dim=1,
    aliases=("one",),
    torch_equivalent="ones_",
)
def ones(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """All one: normalization-layer weights.

    .. math:: W_{ij} = 1
    """
    return draw_full(shape, generator, dtype, 1.0)
