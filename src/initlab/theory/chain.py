"""Layer-by-layer second moments of a finite chain: ``variance_map`` (forward ``q^l``) and
``gradient_map`` (backward ``E(δ^l)²``), with per-layer activations and scales."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.theory.fixed_points import ActivationSpec, activation_function, check_sigmas, derivative
from initlab.theory.integrals import expect


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
        check_sigmas(w, b, allow_zero_w=True)
    if isinstance(q0, bool) or not isinstance(q0, (int, float)) or not (0 <= q0 < math.inf):
        raise UserError(f"q0={q0!r} is invalid; allowed: a finite number >= 0")
    acts = _activation_list(activations, n - 1)
    qs = [sw[0] * float(q0) + sb[0]]
    for layer in range(1, n):
        phi = activation_function(acts[layer - 1], None)
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
        dphi = derivative(activation_function(acts[layer], None))
        slope = expect(lambda u: dphi(u) ** 2, max(qs[layer], 0.0))
        grads[layer] = grads[layer + 1] * sw[layer + 1] * widths[layer + 1] / widths[layer] * slope
    return grads
