"""Identity-preserving schemes: the layer starts as the identity map."""

from __future__ import annotations

import torch

from initlab.schemes.registry import Param, Shape, register


@register(
    "identity",
    formula="W = I (out × in, eye)",
    reference="torch.nn.init.eye_; Le, Jaitly & Hinton 2015 (IRNN)",
    max_dim=2,
    aliases=("eye",),
    torch_equivalent="eye_",
)
def identity(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """The identity matrix (rectangular: ones on the main diagonal), for 2-D weights.

    .. math:: W_{ij} = \\delta_{ij}

    Source: ``torch.nn.init.eye_``; identity recurrent init of Le, Jaitly & Hinton (2015).
    """
    return torch.eye(shape[0], shape[1], dtype=dtype, device=generator.device)


@register(
    "dirac",
    params=(Param("groups", 1, lambda g: g > 0, "an integer > 0 dividing out_channels", kind=int),),
    formula="W[g·o + i, i, centre] = 1: conv that copies its input channels",
    reference="torch.nn.init.dirac_; Zagoruyko & Komodakis 2017 (DiracNets)",
    min_dim=3,
    max_dim=5,
    shape_constraint=lambda shape, p: (
        f"out_channels={shape[0]} is not divisible by groups={p['groups']}" if shape[0] % p["groups"] else None
    ),
)
def dirac(shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, groups: int = 1) -> torch.Tensor:
    """Dirac delta kernel: the convolution returns its input (per group), channels padded with zeros.

    .. math::
        W[g\\,o_g + i,\\ i,\\ k_c] = 1 \\quad (i < \\min(o_g, \\text{in})), \\quad 0 \\text{ elsewhere}

    with :math:`o_g` = out / groups. Source: ``torch.nn.init.dirac_``; Zagoruyko & Komodakis (2017).
    """
    out, inp, *kernel = shape
    per_group = out // groups
    w = torch.zeros(shape, dtype=dtype, device=generator.device)
    centre = tuple(k // 2 for k in kernel)
    for g in range(groups):
        for i in range(min(per_group, inp)):
            one = (g * per_group + i, i, *centre)  # a tuple, not w[*...]: Python 3.10 has no star in subscripts
            w[one] = 1
    return w
