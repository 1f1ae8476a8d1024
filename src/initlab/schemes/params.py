"""Parameters shared by several schemes (``Param``: name, default, check, what is allowed)."""

from __future__ import annotations

from typing import Any

from initlab.activations import canonical
from initlab.schemes.fans import FAN_MODES
from initlab.schemes.registry import Param

DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


def positive_number(x: float) -> bool:
    return x > 0


def nonnegative_number(x: float) -> bool:
    return x >= 0


def any_number(x: float) -> bool:
    return True


def _valid_nonlinearity(name: str) -> bool:
    try:
        canonical(name if not name.startswith("conv") else "linear")
    except ValueError:
        return False
    return True


GAIN = Param("gain", 1.0, positive_number, "a number > 0")
MODE = Param("mode", "fan_in", lambda m: m in FAN_MODES, " | ".join(FAN_MODES), kind=str)
HE_MODE = Param("mode", "fan_in", lambda m: m in FAN_MODES[:2], "fan_in | fan_out", kind=str)
NEG_SLOPE = Param("a", 0.0, nonnegative_number, "a number >= 0 (leaky ReLU negative slope)")
NONLINEARITY = Param(
    "nonlinearity",
    "leaky_relu",
    _valid_nonlinearity,
    "an activation name (relu, leaky_relu, tanh, gelu, ...)",
    kind=str,
)
# He/Kaiming normal and uniform take the same three, named as torch.nn.init.kaiming_*_ does.
HE_PARAMS = (NEG_SLOPE, HE_MODE, NONLINEARITY)
MEAN = Param("mean", 0.0, any_number, "any finite number")


def a_below_b(p: dict[str, Any]) -> str | None:
    """The constraint of ``uniform`` and ``trunc_normal``: the bounds ``a < b``."""
    return None if p["a"] < p["b"] else f"needs a < b; got a={p['a']}, b={p['b']}"
