"""Gains: the factor that restores unit signal variance after an activation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from initlab import checks
from initlab.activations import canonical, get_activation, takes_param
from initlab.quadrature import gaussian_expectation

# The names torch.nn.init.calculate_gain knows; for these, method="torch" returns its values.
TORCH_GAIN_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
GAIN_METHODS = ("torch", "moment")


def _torch_gain(name: str, param: float | None) -> float:
    # Same values as torch.nn.init.calculate_gain (torch/nn/init.py).
    if name in TORCH_GAIN_NAMES[:8]:
        return 1.0
    if name == "tanh":
        return 5.0 / 3
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    return 3.0 / 4  # selu


def _check_param(name: str, param: object) -> None:
    """A parameter only for an activation that has one, and a finite one (torch would ignore it or
    return nan)."""
    base = "linear" if name.startswith("conv") else name
    if not takes_param(base):
        raise checks.fail("param", param, f"no parameter: {name} takes none (leaky_relu, elu and celu do)")
    checks.finite("param", param)


def moment_gain(activation: str | nn.Module | Callable[..., Any], param: float | None = None) -> float:
    """1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1), by Gauss-Hermite quadrature.

    This is the gain that makes unit pre-activation variance a fixed point of the variance map
    q -> gain^2 E[phi(sqrt(q) z)^2] at q = 1 (He et al. 2015's argument for any phi).
    """
    phi = get_activation(activation, param)
    second_moment = gaussian_expectation(lambda z: phi(z) ** 2)
    if not second_moment > 0:
        raise ValueError(f"activation {activation!r} has E[phi(z)^2] = {second_moment}; no gain exists")
    return 1.0 / math.sqrt(second_moment)


def gain(
    nonlinearity: str | nn.Module | Callable[..., Any],
    param: float | None = None,
    *,
    method: str = "torch",
) -> float:
    """Recommended gain for an activation.

    ``method="torch"``: ``torch.nn.init.calculate_gain``'s signature and values for every name
    torch knows (linear/conv/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2/(1+a^2)),
    selu 3/4); any other activation (gelu, silu, mish, elu, softplus, a module or a callable)
    gets the moment gain below, computed numerically.

    ``method="moment"``: for any activation,

    .. math::
        \\text{gain} = 1 / \\sqrt{\\mathbb{E}_{z \\sim \\mathcal{N}(0,1)}[\\phi(z)^2]}

    by Gauss-Hermite quadrature (101 nodes). It equals torch's value for relu, leaky_relu and
    linear; for tanh it is 1.5925 (torch: 5/3, a heuristic), for sigmoid 1.8462 (torch: 1).

    Args:
        nonlinearity: an activation name, an ``nn.Module`` (instance or class) or a callable.
        param: the activation's parameter (leaky ReLU's negative slope, ELU's alpha).
        method: ``"torch"`` or ``"moment"``.
    """
    checks.choice("method", method, GAIN_METHODS)
    if isinstance(nonlinearity, str):
        key = nonlinearity.lower()
        if param is not None:
            _check_param(key, param)
        if method == "torch" and key in TORCH_GAIN_NAMES:
            return _torch_gain(key, param)
        if key.startswith("conv"):
            key = "linear"
        canonical(key)  # raises a UserError with suggestions for unknown names
        return moment_gain(key, param)
    if isinstance(nonlinearity, nn.Module) or callable(nonlinearity):
        return moment_gain(nonlinearity, param)
    raise ValueError(f"nonlinearity must be an activation name, an nn.Module or a callable; got {nonlinearity!r}")
