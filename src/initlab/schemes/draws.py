"""Elementary draws (in the compute dtype, on the generator's device) that every scheme builds on."""

from __future__ import annotations

import math

import torch

from initlab.schemes.registry import Shape

# Std of a unit normal truncated to [-2, 2]; dividing by it keeps the requested variance
# (Keras/JAX VarianceScaling use the same constant).
TRUNCATED_NORMAL_STD = 0.87962566103423978


def _empty(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=generator.device)


def draw_normal(shape: Shape, generator: torch.Generator, dtype: torch.dtype, mean: float, std: float) -> torch.Tensor:
    return _empty(shape, generator, dtype).normal_(mean, std, generator=generator)


def draw_uniform(shape: Shape, generator: torch.Generator, dtype: torch.dtype, low: float, high: float) -> torch.Tensor:
    return _empty(shape, generator, dtype).uniform_(low, high, generator=generator)


def draw_trunc_normal(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, mean: float, std: float, a: float, b: float
) -> torch.Tensor:
    """N(mean, std²) conditioned on [a, b], by rejection, as torch.nn.init.trunc_normal_ (torch 2.13).

    When the interval holds more than 30% of the mass, draw normals and redraw the rejected ones;
    otherwise propose uniformly on [a, b] and accept with the normal density. Exact (no inverse-
    CDF round-off in the tails) and, for the same generator state, torch's values.
    """

    def norm_cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    mass = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std)
    if mass > 0.3:
        lo = torch.tensor(a, dtype=dtype).item()
        hi = torch.tensor(b, dtype=dtype).item()
        result = draw_normal(shape, generator, dtype, mean, std)
        while True:
            reject = (result < lo) | (result > hi)
            if not reject.any():
                return result
            result = torch.where(reject, draw_normal(shape, generator, dtype, mean, std), result)
    mode = max(a, min(mean, b))
    log_peak = -0.5 * ((mode - mean) / std) ** 2
    result = draw_uniform(shape, generator, dtype, a, b)
    log_ratio = ((result - mean) / std).pow_(2).mul_(-0.5).sub_(log_peak)
    pending = draw_uniform(shape, generator, dtype, 0.0, 1.0).log_().gt(log_ratio)
    while pending.any():
        candidates = draw_uniform(shape, generator, dtype, a, b)
        result = torch.where(pending, candidates, result)
        log_ratio = ((candidates - mean) / std).pow_(2).mul_(-0.5).sub_(log_peak)
        pending = torch.where(pending, draw_uniform(shape, generator, dtype, 0.0, 1.0).log_().gt(log_ratio), pending)
    return result


def draw_full(shape: Shape, generator: torch.Generator, dtype: torch.dtype, value: float) -> torch.Tensor:
    """Every entry ``value`` (no draw; the generator only places the tensor)."""
    return torch.full(shape, value, dtype=dtype, device=generator.device)
