"""Gaussian expectations by composite Gauss-Legendre rules (``initlab.theory``'s docstring, "Numerics").

``expect(f, q) = E[f(√q z)]``: folded at 0 on ``z ∈ [0, 10]``, breakpoints graded
geometrically from ``1e-6``. ``expect_pair(f, g, q, c) = E[f(u_1) g(u_2)]``: polar coordinates
split where ``u_1 = 0`` or ``u_2 = 0``, so kinks at 0 lie on cell boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

Function = Callable[[torch.Tensor], torch.Tensor]

# Breakpoints of the composite rules: graded towards 0 (radius) and towards both ends (angle)
# so that the 1/sqrt(q) scale of a saturated activation is resolved for q up to ~1e10.
_RADIAL_BREAKS = (
    0.0,
    1e-6,
    1e-5,
    1e-4,
    1e-3,
    1e-2,
    0.05,
    0.15,
    0.3,
    0.6,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    4.0,
    5.0,
    6.5,
    8.0,
    10.0,
)
_HALF_ARC_BREAKS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.15, 0.3, 0.5)
_NODES_PER_CELL = 8


def _composite(breaks: Sequence[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on each interval between consecutive ``breaks``."""
    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = np.asarray(breaks[:-1])[:, None], np.asarray(breaks[1:])[:, None]
    nodes = (hi - lo) / 2 * x[None, :] + (hi + lo) / 2
    weights = (hi - lo) / 2 * w[None, :]
    return nodes.ravel(), weights.ravel()


@lru_cache(maxsize=1)
def _rule_1d() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes z > 0 and weights with ``Σ w (f(z) + f(-z)) ≈ E[f(Z)]``, Z ~ N(0, 1)."""
    z, w = _composite(_RADIAL_BREAKS, 2 * _NODES_PER_CELL)
    w = w * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return torch.from_numpy(z), torch.from_numpy(w)


@lru_cache(maxsize=1)
def _rule_2d_parts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Radial nodes/weights (``∫_0^∞ h(r) r e^{-r²/2} dr``) and an arc template on [0, 1]."""
    r, wr = _composite(_RADIAL_BREAKS, _NODES_PER_CELL)
    wr = wr * r * np.exp(-r * r / 2)
    half, half_w = _composite(_HALF_ARC_BREAKS, _NODES_PER_CELL)
    s = np.concatenate([half, 1.0 - half[::-1]])
    ws = np.concatenate([half_w, half_w[::-1]])
    return torch.from_numpy(r), torch.from_numpy(wr), torch.from_numpy(s), torch.from_numpy(ws)


def expect(f: Function, q: float = 1.0) -> float:
    """``E[f(√q z)]``, z ~ N(0, 1): composite Gauss-Legendre folded at 0 (module docstring)."""
    z, w = _rule_1d()
    u = math.sqrt(q) * z
    with torch.no_grad():
        return float((w * (f(u) + f(-u))).sum())


def expect_pair(f: Function, g: Function, q: float, c: float | Sequence[float] | np.ndarray) -> np.ndarray | float:
    """``E[f(u_1) g(u_2)]`` with ``(u_1, u_2)`` Gaussian, ``E u_i² = q``, correlation ``c``.

    Polar coordinates split at the angles where ``u_1 = 0`` or ``u_2 = 0`` (module docstring).
    ``c`` may be an array (one value per entry); returns a float for a scalar ``c``.
    """
    scalar = np.ndim(c) == 0
    cs = torch.as_tensor(np.clip(np.atleast_1d(np.asarray(c, dtype=np.float64)), -1.0, 1.0))
    r, wr, s, ws = _rule_2d_parts()
    alpha = torch.arccos(cs)[:, None]  # u_2 = √q r cos(θ - α); u_1 = √q r cos θ
    # One period of length π (the ±r fold supplies the other half), cut where u_1 or u_2 = 0.
    theta = torch.cat([math.pi / 2 + alpha * s, math.pi / 2 + alpha + (math.pi - alpha) * s], dim=1)
    wtheta = torch.cat([alpha * ws, (math.pi - alpha) * ws], dim=1)
    rq = math.sqrt(q) * r
    u1 = rq[None, None, :] * torch.cos(theta)[:, :, None]
    u2 = rq[None, None, :] * torch.cos(theta - alpha)[:, :, None]
    with torch.no_grad():
        values = f(u1) * g(u2) + f(-u1) * g(-u2)
        total = (values * wr[None, None, :]).sum(-1)
        out = (total * wtheta).sum(-1) / (2 * math.pi)
    result = out.numpy()
    return float(result[0]) if scalar else result
