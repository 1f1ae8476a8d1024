"""Looks-linear weights: mirrored blocks, so a plain ReLU network computes a linear map at init."""

from __future__ import annotations

import math
from typing import Any

import torch

from initlab.schemes.orthogonal import _orthogonal_matrix
from initlab.schemes.params import GAIN
from initlab.schemes.registry import Param, Shape, register

POSITIONS = ("hidden", "first", "last")


def _even_halves(shape: tuple[int, ...], params: dict[str, Any]) -> str | None:
    position = params["position"]
    if position in ("hidden", "first") and shape[0] % 2:
        return f"position={position} mirrors the output units in pairs; out={shape[0]} is odd"
    if position in ("hidden", "last") and shape[1] % 2:
        return f"position={position} mirrors the input units in pairs; in={shape[1]} is odd"
    return None


@register(
    "looks_linear",
    params=(GAIN, Param("position", "hidden", lambda p: p in POSITIONS, " | ".join(POSITIONS), kind=str)),
    formula="hidden: gain·[[Q, -Q], [-Q, Q]]; first: gain·[Q; -Q]; last: gain·[Q, -Q] (Q orthogonal)",
    reference=(
        "Balduzzi et al. 2017, The shattered gradients problem (looks-linear init); "
        "Burkholz & Dubatovka 2019, Initialization of ReLUs for dynamical isometry"
    ),
    shape_constraint=_even_halves,
    aliases=("looks_linear_orthogonal", "mirrored"),
)
def looks_linear(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = 1.0, position: str = "hidden"
) -> torch.Tensor:
    """Mirrored orthogonal blocks: with ReLU, the network starts as a linear map (dynamical isometry).

    With ``relu(u) - relu(-u) = u``, a layer whose input is ``[relu(u); relu(-u)]`` and whose
    weight is ``[[Q, -Q], [-Q, Q]]`` has pre-activation ``[Q u; -Q u]``: the mirrored pair
    carries the linear signal ``Q u`` through the next ReLU unchanged. The first layer makes the
    pair from the input, the last layer folds it back:

    .. math::
        W_\\text{first} = g\\begin{bmatrix} Q \\\\ -Q \\end{bmatrix}, \\quad
        W_\\text{hidden} = g\\begin{bmatrix} Q & -Q \\\\ -Q & Q \\end{bmatrix}, \\quad
        W_\\text{last} = g\\begin{bmatrix} Q & -Q \\end{bmatrix}

    Q is (semi-)orthogonal (QR of a Gaussian matrix, as ``orthogonal``), one block per layer
    of shape (out/2, in/2·k) for ``hidden``, (out/2, in·k) for ``first``, (out, in/2·k) for
    ``last``; a conv kernel is mirrored over its channels. With zero biases a chain
    first-hidden-...-hidden-last of ReLU layers computes ``g^L Q_L ... Q_1 x`` exactly, every
    singular value of its input-output Jacobian equal to g^L (for square Q), at any depth.
    Sources: Balduzzi, Frean, Leary, Lewis, Ma & McWilliams (2017), The shattered gradients
    problem: if resnets are the answer, then what is the question?, section 5 (looks-linear
    initialization); Burkholz & Dubatovka (2019), Initialization of ReLUs for dynamical
    isometry (the same parameter sharing, orthogonal blocks).
    """
    out, inp, *kernel = shape
    k = math.prod(kernel)
    rows = out // 2 if position in ("hidden", "first") else out
    cols = inp // 2 if position in ("hidden", "last") else inp
    q = (_orthogonal_matrix(rows, cols * k, generator, dtype) * gain).reshape(rows, cols, *kernel)
    if position == "first":
        return torch.cat([q, -q], dim=0)
    if position == "last":
        return torch.cat([q, -q], dim=1)
    top = torch.cat([q, -q], dim=1)
    return torch.cat([top, -top], dim=0)
