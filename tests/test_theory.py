"""initlab.theory: closed forms where they exist, and Monte Carlo on wide random networks.

Every Monte Carlo test draws from its own seeded ``torch.Generator``; sample counts and
tolerances are stated next to each. Widths 1000-2000, float32, one CPU thread: each test takes
well under a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from initlab import theory
from initlab.activations import get_activation
from initlab.errors import UserError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _layer(n_in: int, n_out: int, sigma_w2: float, sigma_b2: float, gen: torch.Generator):
    """W ~ N(0, σ_w²/n_in), b ~ N(0, σ_b²): the mean-field ensemble (Poole et al. 2016)."""
    weight = torch.randn(n_out, n_in, generator=gen) * math.sqrt(sigma_w2 / n_in)
    bias = torch.randn(n_out, generator=gen) * math.sqrt(sigma_b2)
    return weight, bias


def _propagate(pre: torch.Tensor, phi, sigma_w2: float, sigma_b2: float, depth: int, gen: torch.Generator):
    """Pre-activations h^1..h^depth of h^{l+1} = W φ(h^l) + b, starting from pre-activations ``pre``."""
    width = pre.shape[1]
    out = []
    h = pre
    for _ in range(depth):
        weight, bias = _layer(width, width, sigma_w2, sigma_b2, gen)
        h = phi(h) @ weight.T + bias
        out.append(h)
    return out


def _pairs(q: float, c0: float, n_pairs: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """2·n_pairs pre-activation vectors at second moment q; row i and i+n_pairs have correlation c0."""
    z = torch.randn(n_pairs, width, generator=gen)
    e = torch.randn(n_pairs, width, generator=gen)
    return math.sqrt(q) * torch.cat([z, c0 * z + math.sqrt(1 - c0 * c0) * e])


def _pair_correlation(h: torch.Tensor) -> float:
    n = h.shape[0] // 2
    a, b = h[:n], h[n:]
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())


# --- closed forms -------------------------------------------------------------------------


def _arccos_kernel(c: float) -> float:
    """E[relu(u1) relu(u2)] for unit-variance u with correlation c (Cho & Saul 2009, n = 1)."""
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)


def test_relu_maps_equal_the_arc_cosine_kernel():
    cs = np.array([-1.0, -0.6, 0.0, 0.3, 0.9, 0.999999, 1.0])
    got = theory.c_map("relu", 2.0, 0.0, cs, q=1.0)
    want = np.array([2 * _arccos_kernel(c) for c in cs])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # with a bias: (σ_w² k(c) q + σ_b²) / (σ_w² q / 2 + σ_b²) at q = q* = σ_b² / (1 - σ_w²/2)
    q = theory.q_star("relu", 1.0, 0.1)
    assert q == pytest.approx(0.2, rel=1e-12)
    assert theory.c_map("relu", 1.0, 0.1, 0.5) == pytest.approx(
        (_arccos_kernel(0.5) * q + 0.1) / (q / 2 + 0.1), abs=1e-12
    )


def test_relu_fixed_points_slopes_and_critical_line():
    assert theory.chi1("relu", 1.0, 0.1) == pytest.approx(0.5, rel=1e-12)
    assert theory.chi1("relu", 2.0, 0.0) == pytest.approx(1.0, rel=1e-12)
    assert theory.critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, rel=1e-9)  # He et al. 2015
    assert theory.critical_sigma_w2("relu", 0.3) == pytest.approx(2.0, rel=1e-9)
    assert theory.critical_sigma_w2(nn.LeakyReLU(0.2), 0.0) == pytest.approx(2 / (1 + 0.2**2), rel=1e-9)
    # no finite attracting fixed point: the signal dies below σ_w² = 2 and blows up above
    assert theory.q_star("relu", 1.0, 0.0) == 0.0
    assert theory.q_star("relu", 3.0, 0.0) == math.inf
    assert theory.q_star("relu", 2.0, 0.1) == math.inf  # q grows by σ_b² per layer
    assert theory.q_star("relu", 2.0, 0.0, q0=0.7) == 0.7  # every q is fixed
    assert theory.c_star("relu", 1.0, 0.1) == 1.0  # ReLU is never chaotic
    xi_q, xi_c = theory.depth_scales("relu", 1.0, 0.1)
    assert xi_q == pytest.approx(1 / math.log(2), rel=1e-9)
    assert xi_c == pytest.approx(1 / math.log(2), rel=1e-9)
    assert theory.depth_scales("relu", 2.0, 0.0)[1] == math.inf  # critical


def test_erf_maps_equal_williams_closed_form():
    # E[erf(u1) erf(u2)] = (2/π) arcsin(2 q12 / sqrt((1 + 2 q11)(1 + 2 q22)))  (Williams 1997)
    sw2, sb2, q = 1.7, 0.2, 0.8
    assert theory.q_map(torch.erf, sw2, sb2, q) == pytest.approx(
        sw2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sb2, rel=1e-12
    )
    for c in (-0.8, 0.0, 0.4, 0.95):
        want = (sw2 * 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q)) + sb2) / (
            sw2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sb2
        )
        assert theory.c_map(torch.erf, sw2, sb2, c, q=q) == pytest.approx(want, abs=1e-12)


def test_saturated_tanh_is_resolved_at_large_q():
    # E[sech^4(√q z)] → (4/3) / (√q √(2π)) as q → ∞; Gauss-Hermite with 100 nodes is 88% off at q = 100
    q = 1e6
    got = theory.expect(lambda u: torch.cosh(u) ** -4, q)
    assert got == pytest.approx(4 / 3 / math.sqrt(2 * math.pi * q), rel=1e-6)


def test_tanh_critical_line():
    assert theory.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)  # χ1 - 1 is O(ε²) there
    crit = theory.critical_sigma_w2("tanh", 0.05)
    assert theory.chi1("tanh", crit, 0.05) == pytest.approx(1.0, abs=1e-9)
    assert 1.7 < crit < 1.8  # Schoenholz et al. 2017, Fig. 1: σ_w ≈ 1.33 at σ_b² = 0.05
    assert theory.c_star("tanh", 0.8 * crit, 0.05) == 1.0
    assert theory.c_star("tanh", 1.5 * crit, 0.05) < 0.9
    assert theory.c_star("tanh", 4.0, 0.0) == 0.0  # odd φ, no bias: orthogonal inputs stay orthogonal


# --- Monte Carlo: wide random networks ----------------------------------------------------


def test_variance_map_matches_a_wide_mixed_network():
    # 6 layers, widths 784 → 800-1500, 8 independent networks × batch 16. Inputs align in depth,
    # so a network's q̂ is worth about one sample: sqrt(2/N) ≈ 4% noise per layer, compounding
    # to ~6.5% per network at layer 6 (measured over 16 networks, no bias above 1.2%); the
    # 8-network mean has ~2.3% standard error: tol 6% (observed 3.8%)
    gen = _gen(1)
    widths = [784, 1200, 1000, 1500, 1000, 800, 1000]
    acts = [nn.ReLU(), nn.Tanh(), nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.2)]
    sw2s = [1.0, 2.0, 1.5, 2.5, 1.8, 2.0]
    sb2s = [0.1, 0.0, 0.05, 0.2, 0.0, 0.1]
    measured = np.zeros(6)
    predicted = np.zeros(6)
    for _ in range(8):
        x = torch.randn(16, widths[0], generator=gen) * math.sqrt(2.0)
        h = x
        for layer in range(6):
            weight, bias = _layer(widths[layer], widths[layer + 1], sw2s[layer], sb2s[layer], gen)
            h = (acts[layer - 1](h) if layer else h) @ weight.T + bias
            measured[layer] += float(h.pow(2).mean()) / 8
        predicted += np.array(theory.variance_map(acts, sw2s, sb2s, float(x.pow(2).mean()))) / 8
    np.testing.assert_allclose(measured, predicted, rtol=0.06)


@pytest.mark.parametrize(
    ("activation", "sigma_w2", "sigma_b2", "q_init"),
    [
        ("tanh", 2.5, 0.05, 3.0),
        ("gelu", 1.5, 0.1, 1.0),
        ("relu", 1.0, 0.2, 2.0),
    ],
)
def test_q_star_is_the_limit_of_a_wide_network(activation, sigma_w2, sigma_b2, q_init):
    # In the ordered phase all inputs align, so a batch is worth one sample and q̂ of one layer
    # has relative noise sqrt(2/N) ≈ 4.5%: average 8 independent networks of width 1000 (batch 4,
    # 16 layers, ≥ 5 depth scales ξ_q) over their last 6 layers; tol 3% (observed < 1%)
    gen = _gen(2)
    phi = get_activation(activation)
    measured = []
    for _ in range(8):
        hs = _propagate(torch.randn(4, 1000, generator=gen) * math.sqrt(q_init), phi, sigma_w2, sigma_b2, 16, gen)
        measured += [float(h.pow(2).mean()) for h in hs[-6:]]
    assert np.mean(measured) == pytest.approx(theory.q_star(activation, sigma_w2, sigma_b2, q0=q_init), rel=0.03)


def test_correlation_map_matches_a_wide_network_layer_by_layer():
    # chaotic tanh (χ1 = 1.34, c* = 0.165); width 2000, 16 pairs per start, 10 layers; tol 0.03
    # per layer (observed ≤ 0.022), 0.02 on the mean when started at c* (observed 0.011)
    sw2, sb2 = 4.0, 0.05
    q = theory.q_star("tanh", sw2, sb2)
    c_fixed = theory.c_star("tanh", sw2, sb2)
    assert 0.1 < c_fixed < 0.25
    for c0 in (0.0, 0.6, 0.95, c_fixed):
        gen = _gen(3)
        hs = _propagate(_pairs(q, c0, 16, 2000, gen), torch.tanh, sw2, sb2, 10, gen)
        c = c0
        for h in hs:
            c = theory.c_map("tanh", sw2, sb2, c)
            assert _pair_correlation(h) == pytest.approx(c, abs=0.03)
    # started at c*, it stays there
    assert np.mean([_pair_correlation(h) for h in hs]) == pytest.approx(c_fixed, abs=0.02)


def test_relu_correlations_converge_to_one_like_the_c_map():
    # width 2000, 16 pairs, 12 layers; tol 0.03 (observed ≤ 0.02)
    gen = _gen(4)
    hs = _propagate(_pairs(1.0, 0.2, 16, 2000, gen), torch.relu, 2.0, 0.0, 12, gen)
    c = 0.2
    for h in hs:
        c = theory.c_map("relu", 2.0, 0.0, c)
        assert _pair_correlation(h) == pytest.approx(c, abs=0.03)
    assert c > 0.9


def _gradient_second_moments(hs: list[torch.Tensor], gen: torch.Generator) -> list[float]:
    """E[δ²] per layer for the loss <r, h^L>, r ~ N(0, 1) per entry (drawn from ``gen``)."""
    probe = torch.randn(hs[-1].shape, generator=gen)
    grads = torch.autograd.grad((hs[-1] * probe).sum(), hs)
    return [float(g.pow(2).mean()) for g in grads]


@pytest.mark.parametrize("sigma_w2", [1.0, 4.0, "critical"])
def test_chi1_is_the_per_layer_gradient_growth(sigma_w2):
    # width 1000, batch 32, 20 layers at q*: geometric-mean ratio of E[δ²] per layer; tol 2%
    # (observed 0.3-0.4%). On the critical line gradients neither vanish nor explode.
    sb2 = 0.05
    sw2 = theory.critical_sigma_w2("tanh", sb2) if sigma_w2 == "critical" else sigma_w2
    gen = _gen(5)
    q = theory.q_star("tanh", sw2, sb2)
    start = (torch.randn(32, 1000, generator=gen) * math.sqrt(q)).requires_grad_(True)
    grads = _gradient_second_moments(_propagate(start, torch.tanh, sw2, sb2, 20, gen), gen)
    per_layer = (grads[0] / grads[-1]) ** (1 / (len(grads) - 1))
    assert per_layer == pytest.approx(theory.chi1("tanh", sw2, sb2), rel=0.02)


def test_gradient_map_matches_backprop_through_a_mixed_network():
    # widths change (N_{l+1}/N_l enters), activations differ; widths ≥ 800, 4 networks × batch 32;
    # tol 5% on the 4-network mean (observed ≤ 2%: the backward pass starts from fresh noise)
    gen = _gen(6)
    widths = [500, 1000, 1500, 800, 1200, 1000]
    acts = [nn.Tanh(), nn.ReLU(), nn.GELU(), nn.Tanh()]
    sw2s = [1.0, 2.5, 2.0, 1.5, 3.0]
    sb2s = [0.0, 0.1, 0.0, 0.05, 0.1]
    measured = np.zeros(5)
    predicted = np.zeros(5)
    for _ in range(4):
        x = torch.randn(32, widths[0], generator=gen).requires_grad_(True)
        hs = []
        h = x
        for layer in range(5):
            weight, bias = _layer(widths[layer], widths[layer + 1], sw2s[layer], sb2s[layer], gen)
            h = (acts[layer - 1](h) if layer else h) @ weight.T + bias
            hs.append(h)
        measured += np.array(_gradient_second_moments(hs, gen)) / 4
        qs = theory.variance_map(acts, sw2s, sb2s, float(x.detach().pow(2).mean()))
        predicted += np.array(theory.gradient_map(acts, sw2s, qs, widths[1:], g_out=1.0)) / 4
    np.testing.assert_allclose(measured, predicted, rtol=0.05)


def test_depth_scale_xi_c_is_the_decay_rate_of_one_minus_c():
    # ordered tanh (σ_w² = 1, σ_b² = 0.05: c* = 1, ξ_c = 3.63): 16 pairs at c0 = 0.99, width 2000,
    # 14 layers; the slope of log(1 - c) over layers 4-14 is -1/ξ_c within 5% (observed 1.7%)
    sw2, sb2 = 1.0, 0.05
    q = theory.q_star("tanh", sw2, sb2)
    _, xi_c = theory.depth_scales("tanh", sw2, sb2)
    assert xi_c == pytest.approx(-1 / math.log(theory.chi1("tanh", sw2, sb2)), rel=1e-9)
    gen = _gen(7)
    hs = _propagate(_pairs(q, 0.99, 16, 2000, gen), torch.tanh, sw2, sb2, 14, gen)
    gaps = [1 - _pair_correlation(h) for h in hs]
    slope = np.polyfit(np.arange(3, 14), np.log(gaps[3:]), 1)[0]
    assert -1 / slope == pytest.approx(xi_c, rel=0.05)


@pytest.mark.parametrize("sigma_w2", [1.0, 2.0])
def test_depth_scale_xi_q_is_the_decay_rate_of_q_minus_q_star(sigma_w2):
    # Paired inputs at q*(1 ± 0.1) through the same weights (common noise cancels in the
    # difference); width 1000, batch 64, 6 layers; fitted decay length within 10% (observed ≤ 5%)
    sb2, delta = 0.05, 0.1
    q = theory.q_star("tanh", sigma_w2, sb2)
    xi_q, _ = theory.depth_scales("tanh", sigma_w2, sb2)
    gen = _gen(8)
    z = torch.randn(64, 1000, generator=gen)
    start = torch.cat([z * math.sqrt(q * (1 + delta)), z * math.sqrt(q * (1 - delta))])
    hs = _propagate(start, torch.tanh, sigma_w2, sb2, 6, gen)
    gaps = [float(h[:64].pow(2).mean() - h[64:].pow(2).mean()) / (2 * delta * q) for h in hs]
    slope = np.polyfit(np.arange(1, 7), np.log(gaps), 1)[0]
    assert -1 / slope == pytest.approx(xi_q, rel=0.10)


def test_depth_scales_diverge_on_the_critical_line():
    crit = theory.critical_sigma_w2("tanh", 0.05)
    _, xi_c = theory.depth_scales("tanh", crit, 0.05)
    assert xi_c > 1000
    assert theory.depth_scales("tanh", 4.0, 0.05)[1] < 10 < theory.depth_scales("tanh", 2.0, 0.05)[1]


# --- validation ---------------------------------------------------------------------------


def test_bad_input_is_a_user_error_naming_the_value():
    with pytest.raises(UserError, match="sigma_w2=-1"):
        theory.q_star("tanh", -1, 0.0)
    with pytest.raises(UserError, match="sigma_b2=nan"):
        theory.chi1("tanh", 1.0, float("nan"))
    with pytest.raises(UserError, match="unknown activation 'tanhh'.*'tanh'"):
        theory.q_star("tanhh", 1.0, 0.0)
    with pytest.raises(UserError, match=r"c=1\.5"):
        theory.c_map("tanh", 1.0, 0.0, 1.5)
    with pytest.raises(UserError, match="sigma_b2s has 2 entries; allowed: 3"):
        theory.variance_map("relu", [2.0, 2.0, 2.0], [0.0, 0.0], 1.0)
    with pytest.raises(UserError, match="activations has 3 entries; allowed: 1"):
        theory.variance_map(["relu", "tanh", "relu"], [2.0, 2.0], 0.0, 1.0)
    with pytest.raises(UserError, match="no critical line"):
        theory.critical_sigma_w2(lambda x: torch.zeros_like(x) + 1.0, 0.0)
