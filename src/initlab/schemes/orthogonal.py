"""Orthogonal schemes: dynamical isometry for deep linear and conv nets."""

from __future__ import annotations

import math

import torch

from initlab.schemes.draws import draw_normal
from initlab.schemes.params import GAIN
from initlab.schemes.registry import Shape, register


def _orthogonal_matrix(rows: int, cols: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    # torch.nn.init.orthogonal_'s algorithm (QR of a Gaussian matrix, signs fixed by diag(R)),
    # so the same generator state gives the same matrix.
    flat = draw_normal((rows, cols), generator, dtype, 0.0, 1.0)
    if rows < cols:
        flat = flat.t()
    q: torch.Tensor
    q, r = torch.linalg.qr(flat)
    q = q * torch.diag(r, 0).sign()
    if rows < cols:
        q = q.t()
    return q


@register(
    "orthogonal",
    params=(GAIN,),
    formula="gain · Q, Q (semi-)orthogonal (QR of a Gaussian matrix)",
    reference="Saxe et al. 2014, Exact solutions to the nonlinear dynamics of learning in deep linear networks",
    torch_equivalent="orthogonal_",
)
def orthogonal(shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = 1.0) -> torch.Tensor:
    """(Semi-)orthogonal weights: all singular values equal ``gain``.

    The weight is viewed as a matrix of shape (out, in·prod(kernel)).

    .. math::
        W = \\text{gain}\\cdot Q, \\quad Q^\\top Q = I \\ (\\text{out} \\ge \\text{in})
        \\text{ or } Q Q^\\top = I \\ (\\text{out} < \\text{in})

    Source: Saxe, McClelland & Ganguli (2014). Equals ``torch.nn.init.orthogonal_``: Q from the
    QR decomposition of a standard Gaussian matrix with the signs of diag(R) folded in (Haar measure).
    """
    rows = shape[0]
    cols = math.prod(shape[1:])
    return (_orthogonal_matrix(rows, cols, generator, dtype) * gain).reshape(shape)


@register(
    "delta_orthogonal",
    params=(GAIN,),
    formula="centre tap = gain · Q (out × in, orthogonal), zeros elsewhere",
    reference="Xiao et al. 2018, Dynamical isometry and a mean field theory of CNNs",
    min_dim=3,
    max_dim=5,
    aliases=("delta",),
)
def delta_orthogonal(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = 1.0
) -> torch.Tensor:
    """Delta-orthogonal conv kernel: an orthogonal matrix at the spatial centre, zero elsewhere.

    .. math::
        W[:, :, k_c] = \\text{gain}\\cdot Q \\in \\mathbb{R}^{\\text{out}\\times\\text{in}}, \\quad
        W[:, :, k] = 0 \\ (k \\ne k_c)

    With out >= in and circular padding the convolution is then an exact isometry (times gain):
    ``||conv(x)|| = gain · ||x||``. Source: Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018), Alg. 2.
    """
    out, inp, *kernel = shape
    w = torch.zeros(shape, dtype=dtype, device=generator.device)
    centre = tuple(k // 2 for k in kernel)
    centre_tap: tuple[slice | int, ...] = (
        slice(None),
        slice(None),
        *centre,
    )  # a tuple, not w[*...]: Python 3.10 has no star in subscripts
    w[centre_tap] = _orthogonal_matrix(out, inp, generator, dtype) * gain
    return w
