"""The variance and correlation maps and their fixed points: ``q_map``, ``q_star``, ``c_map``,
``c_star``, ``chi1`` (formulas and sources in ``initlab.theory``'s docstring; Poole et al. 2016,
Schoenholz et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import brentq
from torch import nn

from initlab.activations import get_activation
from initlab.errors import UserError
from initlab.theory.integrals import Function, expect, expect_pair

ActivationSpec = str | nn.Module | Callable[[torch.Tensor], torch.Tensor]

# q stands in for 0 and for infinity when the fixed point is there (see the module docstring).
Q_TINY = 1e-60
Q_HUGE = 1e60
# q_star: brackets are searched between these, by this factor; beyond them q* is 0 or inf.
_Q_MIN, _Q_MAX, _Q_STEP = 1e-30, 1e30, 1.5
_NOISE = 1e-12


def activation_function(activation: ActivationSpec, param: float | None) -> Function:
    """``φ`` on float64 tensors for a name, module or callable (``initlab.activations.get_activation``)."""
    fn = get_activation(activation, param)
    if getattr(activation, "inplace", False):  # nn.ReLU(inplace=True) would overwrite the nodes
        return lambda x: fn(x.clone())
    return fn


def derivative(phi: Function) -> Function:
    """``φ'`` by autograd, elementwise; 0 where ``φ`` is constant."""

    def dphi(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            y = phi(xg)
            if not y.requires_grad:  # a constant function: φ' = 0
                return torch.zeros_like(x)
            (grad,) = torch.autograd.grad(y.sum(), xg, allow_unused=True)
        return torch.zeros_like(x) if grad is None else grad.detach()

    return dphi


def check_sigmas(sigma_w2: float, sigma_b2: float, *, allow_zero_w: bool = False) -> tuple[float, float]:
    """``(σ_w², σ_b²)`` as floats; ``UserError`` naming the one that is not finite, negative, or a zero ``σ_w²``."""
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{name}={value!r} is invalid; allowed: a finite number >= 0")
    if sigma_b2 < 0:
        raise UserError(f"sigma_b2={sigma_b2!r} is invalid; allowed: a finite number >= 0")
    if sigma_w2 < 0 or (sigma_w2 == 0 and not allow_zero_w):
        raise UserError(f"sigma_w2={sigma_w2!r} is invalid; allowed: a finite number > 0")
    return float(sigma_w2), float(sigma_b2)


def clamp_q(q: float) -> float:
    """``q`` kept in ``[Q_TINY, Q_HUGE]``: 0 and inf stand for the limits (module docstring)."""
    return min(max(q, Q_TINY), Q_HUGE)


def q_map(
    activation: ActivationSpec, sigma_w2: float, sigma_b2: float, q: float, *, param: float | None = None
) -> float:
    """One step of the variance map: ``σ_w² E[φ(√q z)²] + σ_b²``."""
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2, allow_zero_w=True)
    phi = activation_function(activation, param)
    return sigma_w2 * expect(lambda u: phi(u) ** 2, q) + sigma_b2


def q_star(
    activation: ActivationSpec,
    sigma_w2: float,
    sigma_b2: float,
    *,
    param: float | None = None,
    q0: float = 1.0,
) -> float:
    """The fixed point ``q*`` of the variance map reached from ``q0`` (see the module docstring).

    The iteration ``q ← σ_w² E[φ(√q z)²] + σ_b²`` moves monotonically for the usual activations
    (the map increases with ``q``) towards the nearest fixed point in the direction of
    ``g(q) = map(q) - q``; that root is bracketed by steps of ×1.5 from ``q0`` and refined by
    Brent's method. Returns ``0.0`` when it lies below 1e-30 (the signal dies: ReLU with
    ``σ_w² < 2, σ_b² = 0``; tanh with ``σ_w² ≤ 1, σ_b² = 0``) and ``math.inf`` above 1e30
    (the signal blows up: ReLU with ``σ_w² > 2``).

    >>> round(q_star("relu", 1.0, 0.1), 6)   # σ_b² / (1 - σ_w²/2)
    0.2
    """
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2)
    if isinstance(q0, bool) or not isinstance(q0, (int, float)) or not (0 < q0 < math.inf):
        raise UserError(f"q0={q0!r} is invalid; allowed: a finite number > 0")
    phi = activation_function(activation, param)

    def g(q: float) -> float:
        return sigma_w2 * expect(lambda u: phi(u) ** 2, q) + sigma_b2 - q

    # |g| below _NOISE * q is rounding, not a sign: a flat map (ReLU at sigma_w2 = 2) must not
    # produce a spurious root at the q where q * eps overtakes sigma_b2.
    q0 = float(q0)
    g0 = g(q0)
    if abs(g0) <= _NOISE * q0:
        return q0
    if g0 > 0:  # climb: lo keeps g > 0, stop at the first clearly negative g
        lo = hi = q0
        while True:
            hi *= _Q_STEP
            if hi > _Q_MAX:
                return math.inf
            gh = g(hi)
            if gh < -_NOISE * hi:
                break
            if gh > 0:
                lo = hi
    else:  # descend: hi keeps g < 0, stop at the first clearly positive g
        lo = hi = q0
        while True:
            lo /= _Q_STEP
            if lo < _Q_MIN:
                return 0.0
            gl = g(lo)
            if gl > _NOISE * lo:
                break
            if gl < 0:
                hi = lo
    return float(brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def q_or_star(
    activation: ActivationSpec, sigma_w2: float, sigma_b2: float, param: float | None, q: float | None
) -> float:
    """``q`` checked and clamped, or ``q*`` when ``q`` is None."""
    if q is None:
        q = q_star(activation, sigma_w2, sigma_b2, param=param)
    elif isinstance(q, bool) or not isinstance(q, (int, float)) or not q >= 0:
        raise UserError(f"q={q!r} is invalid; allowed: a number >= 0 (or None for q*)")
    return clamp_q(float(q))


def c_map(
    activation: ActivationSpec,
    sigma_w2: float,
    sigma_b2: float,
    c: float | Sequence[float] | np.ndarray,
    *,
    param: float | None = None,
    q: float | None = None,
) -> float | np.ndarray:
    """One step of the correlation map at second moment ``q`` (default ``q*``); vectorised in ``c``.

    .. math::
        c' = \\frac{\\sigma_w^2 \\mathbb{E}[\\phi(u_1)\\phi(u_2)] + \\sigma_b^2}{\\sigma_w^2 \\mathbb{E}[\\phi(u_1)^2] + \\sigma_b^2}

    The denominator is the next layer's ``q``; it equals ``q*`` at the fixed point.
    """
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2)
    arr = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > 1):
        raise UserError(f"c={c!r} is invalid; allowed: correlations in [-1, 1]")
    phi = activation_function(activation, param)
    qe = q_or_star(activation, sigma_w2, sigma_b2, param, q)
    q_next = sigma_w2 * expect(lambda u: phi(u) ** 2, qe) + sigma_b2
    if q_next <= 0:
        raise UserError(f"the layer output is identically 0 (sigma_w2={sigma_w2}, sigma_b2={sigma_b2}); no correlation")
    out = (sigma_w2 * np.asarray(expect_pair(phi, phi, qe, arr)) + sigma_b2) / q_next
    out = np.where(arr == 1.0, 1.0, np.clip(out, -1.0, 1.0))
    return float(out) if np.ndim(c) == 0 else out


def c_star(
    activation: ActivationSpec,
    sigma_w2: float,
    sigma_b2: float,
    *,
    param: float | None = None,
    q: float | None = None,
) -> float:
    """The stable fixed point ``c*`` of the correlation map reached from ``c = 0`` (orthogonal inputs).

    ``1.0`` in the ordered phase (all inputs end up aligned); ``< 1`` in the chaotic phase.
    For an odd activation with ``σ_b² = 0`` it is ``0`` (orthogonal inputs stay orthogonal).
    Found by scanning ``c_map(c) - c`` on a grid of [-1, 1] refined towards 1, then Brent's
    method on the first sign change from + to - met when iterating from 0.
    """
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2)
    qe = q_or_star(activation, sigma_w2, sigma_b2, param, q)

    def f(c: float | np.ndarray) -> float | np.ndarray:
        return c_map(activation, sigma_w2, sigma_b2, c, param=param, q=qe) - np.asarray(c)

    near_one = 1.0 - np.logspace(-2, -9, 8)
    grid = np.unique(np.concatenate([np.linspace(-1.0, 1.0, 41)[:-1], near_one]))
    values = np.asarray(f(grid))
    zero = int(np.argmin(np.abs(grid)))  # grid contains 0 exactly
    if values[zero] == 0.0:
        return 0.0
    if values[zero] > 0:  # the iteration climbs: first + → - change above 0, else c* = 1
        for i in range(zero, len(grid) - 1):
            if values[i] > 0 >= values[i + 1]:
                return float(brentq(f, grid[i], grid[i + 1], xtol=1e-14, rtol=1e-14))
        return 1.0
    for i in range(zero, 0, -1):  # the iteration descends: first change met below 0
        if values[i - 1] >= 0 > values[i]:
            return float(brentq(f, grid[i - 1], grid[i], xtol=1e-14, rtol=1e-14))
    return -1.0


def chi1(
    activation: ActivationSpec,
    sigma_w2: float,
    sigma_b2: float,
    *,
    param: float | None = None,
    q: float | None = None,
) -> float:
    """``χ1 = σ_w² E[φ'(√q z)²]`` at ``q`` (default ``q*``): the slope of the c-map at ``c = 1``.

    ``χ1 = 1`` is the critical line. ReLU: ``σ_w²/2``; tanh with ``σ_b² = 0, σ_w² ≤ 1``: ``σ_w²``.
    """
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2)
    dphi = derivative(activation_function(activation, param))
    qe = q_or_star(activation, sigma_w2, sigma_b2, param, q)
    return sigma_w2 * expect(lambda u: dphi(u) ** 2, qe)
