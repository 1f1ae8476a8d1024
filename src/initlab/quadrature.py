"""Gaussian expectations by Gauss-Hermite quadrature.

For z ~ N(0, 1), E[f(z)] ≈ Σ_i w_i f(x_i) with the probabilists' Hermite nodes x_i and weights
w_i / sqrt(2π). Odd-symmetric node sets make piecewise-linear integrands through 0 (ReLU,
leaky ReLU) exact; smooth activations converge fast. Used by ``initlab.gain`` and
``initlab.theory``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

DEFAULT_POINTS = 101


@lru_cache(maxsize=16)
def hermite_normal(n: int = DEFAULT_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) with Σ w f(x) ≈ E[f(z)], z ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2.0 * math.pi)
    return torch.from_numpy(x), torch.from_numpy(w)


def gaussian_expectation(f: Callable[[torch.Tensor], torch.Tensor], n: int = DEFAULT_POINTS) -> float:
    """E[f(z)] for z ~ N(0, 1); ``f`` maps a float64 tensor elementwise."""
    x, w = hermite_normal(n)
    with torch.no_grad():
        return float((w * f(x.clone())).sum())
