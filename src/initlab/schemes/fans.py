"""Fan-in and fan-out from torch's weight layout ``(out, in, *kernel)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape``, as ``torch.nn.init`` computes them.

    .. math::
        \\text{fan\\_in} = \\text{in} \\cdot \\prod \\text{kernel}, \\qquad
        \\text{fan\\_out} = \\text{out} \\cdot \\prod \\text{kernel}

    A tensor with fewer than two dimensions has no fans (a bias does not know its layer).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"fans need a weight with at least 2 dimensions (out, in, *kernel); got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def fan(shape: Sequence[int], mode: str) -> float:
    """The fan selected by ``mode``: ``fan_in``, ``fan_out`` or ``fan_avg`` = (in + out) / 2."""
    fan_in, fan_out = compute_fans(shape)
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    raise ValueError(f"mode must be one of {', '.join(FAN_MODES)}; got {mode!r}")
