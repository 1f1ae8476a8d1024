"""Mean-field signal propagation at initialization, for any activation.

A deep fully connected network at init (Poole et al. 2016, Schoenholz et al. 2017):

.. math::
    h^{l} = W^{l} \\phi(h^{l-1}) + b^{l}, \\qquad
    W^{l}_{ij} \\sim \\mathcal{N}(0, \\sigma_w^2 / N_{l-1}), \\quad b^{l}_i \\sim \\mathcal{N}(0, \\sigma_b^2),

with ``h^1 = W^1 x + b^1``. In the wide limit every pre-activation ``h^l_i`` is Gaussian.

**q** is the *pre-activation second moment* of a layer for one input,
``q^l = (1/N_l) Σ_i (h^l_i)^2`` (in the wide limit ``E[(h^l_i)^2]``: the variance when, as
here, weights and biases have zero mean). It is the second moment of a Linear layer's *output*
(before its activation). The input's is ``q^0 = (1/N_0) Σ_k x_k^2``. It obeys the *variance
map*

.. math::
    q^{l} = \\sigma_w^2 \\, \\mathbb{E}_{z}[\\phi(\\sqrt{q^{l-1}} z)^2] + \\sigma_b^2, \\quad z \\sim \\mathcal{N}(0, 1),

(``q^1 = σ_w² q^0 + σ_b²``) whose attracting fixed point is ``q*``. Two inputs of second moment
``q`` and correlation ``c = q_{12}/q`` map to the correlation

.. math::
    c' = \\frac{\\sigma_w^2 \\, \\mathbb{E}[\\phi(u_1)\\phi(u_2)] + \\sigma_b^2}
              {\\sigma_w^2 \\, \\mathbb{E}[\\phi(u_1)^2] + \\sigma_b^2}, \\quad
    u_1 = \\sqrt{q} z_1, \\; u_2 = \\sqrt{q}(c z_1 + \\sqrt{1 - c^2} z_2),

whose stable fixed point (at ``q = q*``) is ``c*``. Its slope at ``c = 1`` is

.. math::
    \\chi_1 = \\sigma_w^2 \\, \\mathbb{E}[\\phi'(\\sqrt{q^*} z)^2],

the mean squared singular value of one layer's Jacobian: ``χ1 < 1`` is the ordered phase
(inputs converge, gradients vanish), ``χ1 > 1`` the chaotic phase (nearby inputs decorrelate,
gradients explode), ``χ1 = 1`` the critical line ("edge of chaos"). Deviations from the fixed
points decay as ``exp(-l/ξ)`` with the depth scales (Schoenholz et al. 2017, eqs. 4 and 8)

.. math::
    \\xi_q^{-1} = -\\log\\big(\\chi_1 + \\sigma_w^2 \\mathbb{E}[\\phi''(\\sqrt{q^*} z)\\phi(\\sqrt{q^*} z)]\\big),
    \\qquad
    \\xi_c^{-1} = -\\log\\big(\\sigma_w^2 \\mathbb{E}[\\phi'(u_1^*)\\phi'(u_2^*)]\\big).

Backward, the gradient ``δ^l = ∂ℓ/∂h^l`` has second moment
``E[(δ^l)^2] = E[(δ^{l+1})^2] · σ_{w,l+1}^2 (N_{l+1}/N_l) E[φ'(√q^l z)^2]`` (gradient
independence, Schoenholz et al. 2017 §4), so at the fixed point it scales by ``χ1`` per layer.

Numerics. ``φ`` is any activation ``initlab.activations.get_activation`` understands (a name,
an ``nn.Module`` or a callable on float64 tensors); ``φ'`` comes from autograd. Gauss-Hermite
(``initlab.quadrature``) cannot be used here: its nodes are ``O(1)`` apart near 0, so it misses
the ``1/√q`` scale of a saturating ``tanh`` at large ``q`` (23% error on ``E[sech^4(5z)]`` with
100 nodes) and converges slowly across kinks (``1e-2`` on the ReLU correlation kernel). One-
dimensional expectations use composite Gauss-Legendre on ``z ∈ [0, 10]`` folded at 0 (``f(z) +
f(-z)``) with breakpoints graded geometrically from ``1e-6``; two-dimensional ones use polar
coordinates ``(z_1, z_2) = r(\\cos θ, \\sin θ)``, folded over ``±r`` and split at the angles
where ``u_1 = 0`` or ``u_2 = 0``, so every kink of a ReLU-like activation (or step of its
derivative) lies on a cell boundary: ReLU and leaky ReLU maps are exact to rounding (checked
against the arc-cosine kernel of Cho & Saul 2009 in the tests), smooth activations are accurate
to about 1e-10 relative; kinks away from 0 converge more slowly (hardtanh: ~5e-5 relative).

Where the variance map has no finite positive attracting fixed point (ReLU with
``σ_b² = 0``: ``q`` shrinks to 0 for ``σ_w² < 2`` and grows without bound above), ``q_star``
returns ``0.0`` or ``math.inf`` and the other quantities are evaluated at ``q = 1e-60`` or
``1e60``: their limits for positively homogeneous activations (exact for the ReLU family).

References: Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli, "Exponential expressivity in deep
neural networks through transient chaos", NeurIPS 2016. Schoenholz, Gilmer, Ganguli,
Sohl-Dickstein, "Deep Information Propagation", ICLR 2017.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq
from torch import nn

from initlab.activations import get_activation
from initlab.errors import UserError

ActivationSpec = str | nn.Module | Callable[[torch.Tensor], torch.Tensor]
Function = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "c_map",
    "c_star",
    "chi1",
    "critical_sigma_w2",
    "depth_scales",
    "expect",
    "expect_pair",
    "gradient_map",
    "q_map",
    "q_star",
    "variance_map",
]

# q stands in for 0 and for infinity when the fixed point is there (see the module docstring).
Q_TINY = 1e-60
Q_HUGE = 1e60
# q_star: brackets are searched between these, by this factor; beyond them q* is 0 or inf.
_Q_MIN, _Q_MAX, _Q_STEP = 1e-30, 1e30, 1.5
_NOISE = 1e-12

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


def _phi(activation: ActivationSpec, param: float | None) -> Function:
    fn = get_activation(activation, param)
    if getattr(activation, "inplace", False):  # nn.ReLU(inplace=True) would overwrite the nodes
        return lambda x: fn(x.clone())
    return fn


def _derivative(phi: Function) -> Function:
    def dphi(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            y = phi(xg)
            if not y.requires_grad:  # a constant function: φ' = 0
                return torch.zeros_like(x)
            (grad,) = torch.autograd.grad(y.sum(), xg, allow_unused=True)
        return torch.zeros_like(x) if grad is None else grad.detach()

    return dphi


def _check(sigma_w2: float, sigma_b2: float, *, allow_zero_w: bool = False) -> tuple[float, float]:
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{name}={value!r} is invalid; allowed: a finite number >= 0")
    if sigma_b2 < 0:
        raise UserError(f"sigma_b2={sigma_b2!r} is invalid; allowed: a finite number >= 0")
    if sigma_w2 < 0 or (sigma_w2 == 0 and not allow_zero_w):
        raise UserError(f"sigma_w2={sigma_w2!r} is invalid; allowed: a finite number > 0")
    return float(sigma_w2), float(sigma_b2)


def _effective_q(q: float) -> float:
    return min(max(q, Q_TINY), Q_HUGE)


def q_map(
    activation: ActivationSpec, sigma_w2: float, sigma_b2: float, q: float, *, param: float | None = None
) -> float:
    """One step of the variance map: ``σ_w² E[φ(√q z)²] + σ_b²``."""
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2, allow_zero_w=True)
    phi = _phi(activation, param)
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
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2)
    if isinstance(q0, bool) or not isinstance(q0, (int, float)) or not (0 < q0 < math.inf):
        raise UserError(f"q0={q0!r} is invalid; allowed: a finite number > 0")
    phi = _phi(activation, param)

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


def _q_for(activation: ActivationSpec, sigma_w2: float, sigma_b2: float, param: float | None, q: float | None) -> float:
    if q is None:
        q = q_star(activation, sigma_w2, sigma_b2, param=param)
    elif isinstance(q, bool) or not isinstance(q, (int, float)) or not q >= 0:
        raise UserError(f"q={q!r} is invalid; allowed: a number >= 0 (or None for q*)")
    return _effective_q(float(q))


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
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2)
    arr = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > 1):
        raise UserError(f"c={c!r} is invalid; allowed: correlations in [-1, 1]")
    phi = _phi(activation, param)
    qe = _q_for(activation, sigma_w2, sigma_b2, param, q)
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
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2)
    qe = _q_for(activation, sigma_w2, sigma_b2, param, q)

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
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2)
    dphi = _derivative(_phi(activation, param))
    qe = _q_for(activation, sigma_w2, sigma_b2, param, q)
    return sigma_w2 * expect(lambda u: dphi(u) ** 2, qe)


def depth_scales(
    activation: ActivationSpec,
    sigma_w2: float,
    sigma_b2: float,
    *,
    param: float | None = None,
) -> tuple[float, float]:
    """``(ξ_q, ξ_c)``: layers over which ``q`` and ``c`` approach ``q*`` and ``c*`` (Schoenholz 2017).

    ``ξ_q = -1/log(dq'/dq at q*)`` with ``dq'/dq = χ1 + σ_w² E[φ''φ]``, computed in the
    equivalent Stein form ``σ_w² E[z φ(√q z) φ'(√q z)]/√q`` so that only ``φ'`` is needed;
    ``ξ_c = -1/log(χ_c)``, ``χ_c = σ_w² E[φ'(u_1)φ'(u_2)]`` at ``(q*, c*)`` (``= χ1`` when
    ``c* = 1``). A slope ``>= 1`` (the critical line, or a marginal fixed point) gives
    ``math.inf``: deviations then decay slower than exponentially.
    """
    sigma_w2, sigma_b2 = _check(sigma_w2, sigma_b2)
    phi = _phi(activation, param)
    dphi = _derivative(phi)
    qe = _q_for(activation, sigma_w2, sigma_b2, param, None)
    root = math.sqrt(qe)
    slope_q = sigma_w2 * expect(lambda u: (u / root) * phi(u) * dphi(u), qe) / root
    c = c_star(activation, sigma_w2, sigma_b2, param=param, q=qe)
    if c >= 1.0:
        slope_c = sigma_w2 * expect(lambda u: dphi(u) ** 2, qe)
    else:
        slope_c = sigma_w2 * float(expect_pair(dphi, dphi, qe, c))

    def scale(slope: float) -> float:
        slope = abs(slope)
        if slope >= 1.0:
            return math.inf
        if slope == 0.0:
            return 0.0
        return -1.0 / math.log(slope)

    return scale(slope_q), scale(slope_c)


def critical_sigma_w2(activation: ActivationSpec, sigma_b2: float, *, param: float | None = None) -> float:
    """``σ_w²`` on the critical line ``χ1(σ_w², σ_b²) = 1`` (the edge of chaos) for this ``σ_b²``.

    ReLU: 2 for every ``σ_b²`` (He init); tanh: 1 at ``σ_b² = 0``, about 1.76 at
    ``σ_b² = 0.05``. Solved by bracketing ``χ1 - 1`` on ``σ_w² ∈ [1e-4, 1e4]`` (×1.25 steps) and
    Brent's method; ``UserError`` when the activation has no critical point there.
    """
    _check(1.0, sigma_b2)

    def g(sw2: float) -> float:
        return chi1(activation, sw2, sigma_b2, param=param) - 1.0

    lo = 1e-4
    g_lo = g(lo)
    if g_lo >= 0:
        raise UserError(
            f"activation {activation!r} has chi1 >= 1 already at sigma_w2=1e-4 (sigma_b2={sigma_b2}); no critical line"
        )
    hi = lo * 1.25
    while g(hi) < 0:
        lo, hi = hi, hi * 1.25
        if hi > 1e4:
            raise UserError(
                f"activation {activation!r} has chi1 < 1 for every sigma_w2 up to 1e4 (sigma_b2={sigma_b2}); "
                "no critical line (is its derivative zero at the origin?)"
            )
    return float(brentq(g, lo, hi, xtol=1e-13, rtol=1e-13))


def _per_layer(name: str, values: Sequence[Any], n: int) -> list[Any]:
    values = list(values)
    if len(values) != n:
        raise UserError(f"{name} has {len(values)} entries; allowed: {n} (one per layer)")
    return values


def _activation_list(activations: ActivationSpec | Sequence[ActivationSpec], n: int) -> list[ActivationSpec]:
    if isinstance(activations, (str, nn.Module)) or callable(activations):
        return [activations] * n
    acts = list(activations)
    if len(acts) != n:
        raise UserError(f"activations has {len(acts)} entries; allowed: {n} (one between each pair of layers) or one")
    return acts


def variance_map(
    activations: ActivationSpec | Sequence[ActivationSpec],
    sigma_w2s: Sequence[float],
    sigma_b2s: Sequence[float] | float,
    q0: float,
) -> list[float]:
    """Pre-activation second moments ``[q^1, …, q^L]`` of a chain of ``L`` layers.

    .. math::
        q^1 = \\sigma_{w,1}^2 q^0 + \\sigma_{b,1}^2, \\qquad
        q^{l} = \\sigma_{w,l}^2 \\mathbb{E}[\\phi_{l-1}(\\sqrt{q^{l-1}} z)^2] + \\sigma_{b,l}^2

    Args:
        activations: ``φ_l`` between layer ``l`` and ``l+1``: ``L - 1`` entries (names,
            modules or callables; ``"linear"`` for none), or one used everywhere.
        sigma_w2s: ``σ_{w,l}² = fan_in · Var(W^l)`` per layer (``L`` entries, ``>= 0``).
        sigma_b2s: ``σ_{b,l}² = Var(b^l)`` per layer, or one value for all.
        q0: the input's second moment per coordinate, ``mean(x²)``.
    """
    sw = [float(v) for v in sigma_w2s]
    n = len(sw)
    if n == 0:
        raise UserError("sigma_w2s is empty; allowed: one value per layer (at least one layer)")
    sb = (
        [float(sigma_b2s)] * n
        if isinstance(sigma_b2s, (int, float))
        else [float(v) for v in _per_layer("sigma_b2s", sigma_b2s, n)]
    )
    for w, b in zip(sw, sb):
        _check(w, b, allow_zero_w=True)
    if isinstance(q0, bool) or not isinstance(q0, (int, float)) or not (0 <= q0 < math.inf):
        raise UserError(f"q0={q0!r} is invalid; allowed: a finite number >= 0")
    acts = _activation_list(activations, n - 1)
    qs = [sw[0] * float(q0) + sb[0]]
    for layer in range(1, n):
        phi = _phi(acts[layer - 1], None)
        qs.append(sw[layer] * expect(lambda u: phi(u) ** 2, qs[-1]) + sb[layer])
    return qs


def gradient_map(
    activations: ActivationSpec | Sequence[ActivationSpec],
    sigma_w2s: Sequence[float],
    qs: Sequence[float],
    widths: Sequence[int],
    g_out: float = 1.0,
) -> list[float]:
    """Second moments ``[E(δ^1)², …, E(δ^L)²]`` of the gradient w.r.t. each layer's output.

    .. math::
        \\mathbb{E}(\\delta^L)^2 = g_{out}, \\qquad
        \\mathbb{E}(\\delta^{l})^2 = \\mathbb{E}(\\delta^{l+1})^2 \\, \\sigma_{w,l+1}^2 \\frac{N_{l+1}}{N_l}
        \\mathbb{E}[\\phi_l'(\\sqrt{q^l} z)^2]

    (gradient independence; Schoenholz et al. 2017 §4). ``qs`` are the layers' pre-activation
    second moments (``variance_map``), ``widths`` their output sizes ``N_l``, ``g_out`` the
    last layer's gradient second moment.
    """
    sw = [float(v) for v in sigma_w2s]
    n = len(sw)
    qs = [float(v) for v in _per_layer("qs", qs, n)]
    widths = [int(v) for v in _per_layer("widths", widths, n)]
    if any(w <= 0 for w in widths):
        raise UserError(f"widths={widths!r} is invalid; allowed: positive integers")
    acts = _activation_list(activations, n - 1)
    grads = [0.0] * n
    grads[-1] = float(g_out)
    for layer in range(n - 2, -1, -1):
        dphi = _derivative(_phi(acts[layer], None))
        slope = expect(lambda u: dphi(u) ** 2, max(qs[layer], 0.0))
        grads[layer] = grads[layer + 1] * sw[layer + 1] * widths[layer + 1] / widths[layer] * slope
    return grads
