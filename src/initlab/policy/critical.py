"""The depth-critical weight scale, fast enough for 10,000-layer plans.

``depth_critical_gain(phi, depth)`` solves prod_{l<depth} chi_l(sigma) = 1 along the mean-field
variance recursion (Schoenholz et al. 2017). The naive solution runs the recursion layer by
layer for every bisection step, each layer a Gauss-Hermite quadrature with autograd: 50 x depth
quadratures, 15 s at 1,000 layers. Here the two Gaussian moments are tabulated once per
activation on a fine log-q grid (one vectorised quadrature), and the recursion runs for many
candidate sigmas at once in NumPy, so the cost is a few NumPy operations per layer.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from initlab.activations import get_activation
from initlab.quadrature import hermite_normal

# log q grid of the moment tables: q from e^-40 to e^16 in steps of 0.002. Linear interpolation
# of log-moment against log q is then accurate to ~h^2/8 = 5e-7 relative per layer, which moves
# the critical sigma by ~2.5e-7 whatever the depth (the log-gain's slope in sigma grows with
# depth as fast as the accumulated error does).
LOG_Q_MIN, LOG_Q_MAX, LOG_Q_STEP = -40.0, 16.0, 0.002
SIGMA_LO, SIGMA_HI = 0.25, 8.0
# Sigmas per multisection pass: [0.25, 8] narrows to a bracket of relative width ~3e-7.
CANDIDATES = (96, 96, 16)


@lru_cache(maxsize=32)
def _moment_tables(activation: str, param: float | None) -> np.ndarray:
    """Columns log E[phi(sqrt(q) z)^2] and log E[phi'(sqrt(q) z)^2] on the log-q grid (float64)."""
    phi = get_activation(activation, param)
    nodes, weights = hermite_normal()
    log_q = torch.arange(LOG_Q_MIN, LOG_Q_MAX + LOG_Q_STEP / 2, LOG_Q_STEP, dtype=torch.float64)
    rows = []
    for chunk in log_q.split(2048):
        z = (torch.exp(0.5 * chunk)[:, None] * nodes[None, :]).requires_grad_(True)
        with torch.enable_grad():
            y = phi(z)
            (dy,) = torch.autograd.grad(y.sum(), z)
        rows.append(torch.stack([(weights * y.detach() ** 2).sum(1), (weights * dy**2).sum(1)], 1))
    moments = torch.cat(rows).numpy()
    tiny = np.finfo(np.float64).tiny
    # A zero slope moment (dead activation) is log 0 = -inf: no sigma keeps the gradient there.
    with np.errstate(divide="ignore"):
        return np.stack([np.log(np.maximum(moments[:, 0], tiny)), np.log(moments[:, 1])], 1)


def _interp(log_q: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both log-moments at ``log_q``: linear in log q, extended linearly (a power law in q) past the grid ends."""
    t = (log_q - LOG_Q_MIN) * (1.0 / LOG_Q_STEP)
    i = np.minimum(np.maximum(t.astype(np.int64), 0), tables.shape[0] - 2)
    frac = (t - i)[:, None]  # outside the grid frac < 0 or > 1: the end segment's power law continues
    lower = tables[i]
    values = lower + frac * (tables[i + 1] - lower)
    return values[:, 0], values[:, 1]


def log_gradient_gains(
    activation: str,
    param: float | None,
    depth: int,
    sigmas: np.ndarray,
    input_variance: float = 1.0,
    bias_variance: float = 0.0,
) -> np.ndarray:
    """sum_{l<depth} log chi_l for each sigma: the log of the mean-field gradient gain over ``depth`` layers.

    .. math::
        q_1 = \\sigma^2 v_{in} + \\sigma_b^2, \\quad
        q_{l+1} = \\sigma^2\\,\\mathbb{E}[\\phi(\\sqrt{q_l} z)^2] + \\sigma_b^2, \\quad
        \\chi_l = \\sigma^2\\,\\mathbb{E}[\\phi'(\\sqrt{q_l} z)^2]
    """
    tables = _moment_tables(activation, param)
    log_s2 = 2.0 * np.log(sigmas)
    log_q = np.log(sigmas**2 * input_variance + bias_variance)
    total = (depth - 1) * log_s2
    for _ in range(depth - 1):
        log_m2, log_slope = _interp(log_q, tables)
        total += log_slope
        log_q = log_s2 + log_m2
        if bias_variance:
            log_q = np.logaddexp(log_q, math.log(bias_variance))
    return total


@lru_cache(maxsize=64)
def depth_critical_gain(
    activation: str,
    param: float | None = None,
    depth: int = 10,
    input_variance: float = 1.0,
    bias_variance: float = 0.0,
) -> float | None:
    """The weight scale sigma at which the mean-field gradient gain over ``depth`` layers is 1.

    With pre-activation variance q_1 = sigma^2 * input_variance + sigma_b^2 and, layer to layer
    (fan-in-scaled weights of variance sigma^2/fan_in, biases of variance sigma_b^2, zero in the
    auto policy),

    .. math::
        q_{l+1} = \\sigma^2\\,\\mathbb{E}[\\phi(\\sqrt{q_l} z)^2] + \\sigma_b^2, \\qquad
        \\chi_l = \\sigma^2\\,\\mathbb{E}[\\phi'(\\sqrt{q_l} z)^2], \\qquad z \\sim \\mathcal{N}(0, 1),

    the variance of the gradient at layer 1 over that at layer ``depth`` is prod_{l<depth} chi_l.
    This returns the sigma in [0.25, 8] where that product is 1 (``log_gradient_gains(...) ==
    0``; expectations by Gauss-Hermite quadrature, tabulated once per activation), or None when
    there is none. For a saturating activation with zero biases there is no finite-depth fixed
    point with chi = 1 except q -> 0 (sigma = 1); this is the finite-depth edge of chaos. Cached
    per (activation, param, depth, input variance, bias variance), so a 10,000-layer plan
    computes it once. Sources: Poole et al. (2016); Schoenholz et al. (2017), Deep information
    propagation; Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid.

    Multisection: each pass evaluates ``CANDIDATES[k]`` sigmas at once (log-spaced in the current
    bracket) and keeps the sub-bracket where the log gain changes sign; the root of the final
    bracket is the linear interpolation of the log gain (smooth in sigma, so the error is far
    below the tables' ~2.5e-7).
    """
    lo, hi = SIGMA_LO, SIGMA_HI
    for count in CANDIDATES:
        sigmas = np.geomspace(lo, hi, count)
        gains = log_gradient_gains(activation, param, depth, sigmas, input_variance, bias_variance)
        if lo == SIGMA_LO and not (gains[0] < 0 < gains[-1]):
            return None
        above = np.nonzero(gains >= 0)[0]
        k = int(above[0]) if above.size else count - 1
        k = max(k, 1)
        lo, hi, f_lo, f_hi = float(sigmas[k - 1]), float(sigmas[k]), float(gains[k - 1]), float(gains[k])
    if not (math.isfinite(f_lo) and math.isfinite(f_hi)) or f_hi == f_lo:
        return 0.5 * (lo + hi)
    return lo + (hi - lo) * (-f_lo) / (f_hi - f_lo)
