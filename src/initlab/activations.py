"""Activations by name: the one place that maps a name (or module, or callable) to a function.

Names follow ``torch.nn.functional``; ``linear``/``identity`` mean no activation. Used by the
gains, the theory, the models and the policy, so they all agree on what "gelu" is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from initlab.errors import lookup

Activation = Callable[[torch.Tensor], torch.Tensor]

# name -> (function of (x, param), default param, module factory). The param is a float for the
# parametrised activations and None for the others: Any, since one table holds both.
_TABLE: dict[str, tuple[Callable[[torch.Tensor, Any], torch.Tensor], float | None, Callable[[Any], nn.Module]]] = {
    "linear": (lambda x, p: x, None, lambda p: nn.Identity()),
    "relu": (lambda x, p: F.relu(x), None, lambda p: nn.ReLU()),
    "leaky_relu": (lambda x, p: F.leaky_relu(x, p), 0.01, lambda p: nn.LeakyReLU(p)),
    "tanh": (lambda x, p: torch.tanh(x), None, lambda p: nn.Tanh()),
    "sigmoid": (lambda x, p: torch.sigmoid(x), None, lambda p: nn.Sigmoid()),
    "selu": (lambda x, p: F.selu(x), None, lambda p: nn.SELU()),
    "elu": (lambda x, p: F.elu(x, p), 1.0, lambda p: nn.ELU(p)),
    "celu": (lambda x, p: F.celu(x, p), 1.0, lambda p: nn.CELU(p)),
    "gelu": (lambda x, p: F.gelu(x), None, lambda p: nn.GELU()),
    "silu": (lambda x, p: F.silu(x), None, lambda p: nn.SiLU()),
    "mish": (lambda x, p: F.mish(x), None, lambda p: nn.Mish()),
    "softplus": (lambda x, p: F.softplus(x), None, lambda p: nn.Softplus()),
    "softsign": (lambda x, p: F.softsign(x), None, lambda p: nn.Softsign()),
    "relu6": (lambda x, p: F.relu6(x), None, lambda p: nn.ReLU6()),
    "hardtanh": (lambda x, p: F.hardtanh(x), None, lambda p: nn.Hardtanh()),
    "hardswish": (lambda x, p: F.hardswish(x), None, lambda p: nn.Hardswish()),
    "hardsigmoid": (lambda x, p: F.hardsigmoid(x), None, lambda p: nn.Hardsigmoid()),
    "sin": (lambda x, p: torch.sin(x), None, lambda p: _Sin()),
}
ALIASES = {"identity": "linear", "none": "linear", "swish": "silu", "erf_gelu": "gelu"}

# Module class -> registered name, for reading activations off a model.
MODULE_NAMES: dict[type, str] = {
    nn.Identity: "linear",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SELU: "selu",
    nn.ELU: "elu",
    nn.CELU: "celu",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Mish: "mish",
    nn.Softplus: "softplus",
    nn.Softsign: "softsign",
    nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
}


class _Sin(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


def names() -> list[str]:
    """Registered activation names (aliases excluded)."""
    return sorted(_TABLE)


def canonical(name: str) -> str:
    """The registered name for ``name`` or an alias; ``UserError`` when unknown."""
    return lookup("activation", name, _TABLE, ALIASES)


def takes_param(name: str) -> bool:
    """Whether the activation ``name`` has a parameter (leaky ReLU's slope, ELU's and CELU's alpha)."""
    return _TABLE[canonical(name)][1] is not None


def module_param(module: nn.Module) -> float | None:
    """The parameter of a parametrised activation module (leaky ReLU slope, ELU alpha)."""
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    if isinstance(module, (nn.ELU, nn.CELU)):
        return float(module.alpha)
    return None


def get_activation(spec: str | nn.Module | Callable[..., Any], param: float | None = None) -> Activation:
    """A function of a tensor for ``spec``: a name, an ``nn.Module`` (instance or class) or a callable."""
    if isinstance(spec, str):
        key = canonical(spec)
        fn, default, _ = _TABLE[key]
        p = default if param is None else float(param)
        return lambda x: fn(x, p)
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        spec = spec()
    if callable(spec):
        return cast(Activation, spec)
    raise TypeError(f"activation must be a name, an nn.Module or a callable; got {type(spec).__name__}")


def activation_module(name: str, param: float | None = None) -> nn.Module:
    """A fresh ``nn.Module`` for a registered activation name."""
    key = canonical(name)
    _, default, make = _TABLE[key]
    return make(default if param is None else float(param))
