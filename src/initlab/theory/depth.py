"""Depth scales ``ξ_q``, ``ξ_c`` and the critical line ``χ1 = 1`` (Schoenholz et al. 2017, eqs. 4 and 8)."""

from __future__ import annotations

import math

from scipy.optimize import brentq

from initlab.errors import UserError
from initlab.theory.fixed_points import (
    ActivationSpec,
    activation_function,
    c_star,
    check_sigmas,
    chi1,
    derivative,
    q_or_star,
)
from initlab.theory.integrals import expect, expect_pair


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
    sigma_w2, sigma_b2 = check_sigmas(sigma_w2, sigma_b2)
    phi = activation_function(activation, param)
    dphi = derivative(phi)
    qe = q_or_star(activation, sigma_w2, sigma_b2, param, None)
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
    check_sigmas(1.0, sigma_b2)

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
