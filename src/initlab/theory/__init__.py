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

Layout: ``integrals`` (the two quadrature rules: ``expect``, ``expect_pair``), ``fixed_points``
(the q- and c-maps, ``q*``, ``c*``, ``χ1``), ``depth`` (depth scales, the critical line),
``chain`` (layer-by-layer second moments of a finite chain, forward and backward). Every name
is importable from ``initlab.theory``.
"""

from initlab.theory.chain import gradient_map, variance_map
from initlab.theory.depth import critical_sigma_w2, depth_scales
from initlab.theory.fixed_points import Q_HUGE, Q_TINY, ActivationSpec, c_map, c_star, chi1, q_map, q_star
from initlab.theory.integrals import Function, expect, expect_pair

__all__ = [
    "Q_HUGE",
    "Q_TINY",
    "ActivationSpec",
    "Function",
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
