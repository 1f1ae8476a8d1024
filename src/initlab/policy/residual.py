"""Residual depth scaling: Fixup's branch scaling, scaled branch ends (GPT-2), a decision's variance.

A residual net sums L branches onto its skip path. Without normalization the variance of the
sum grows with L unless each branch starts small. Fixup (Zhang, Dauphin & Ma 2019) makes every
branch of m weight layers contribute O(1/L) in total: its last layer starts at zero and its
other layers are scaled by ``L^(-1/(2m-2))`` (standard deviation), so that the product of the
m - 1 scaled layers is ``L^(-1/2)``. GPT-2 (Radford et al. 2019) and Megatron-LM (Shoeybi et al.
2019) instead scale each residual output projection by ``1/sqrt(2 n_layer)`` = ``1/sqrt(L)``
with L branches (two per block), keeping the branch ends non-zero.
"""

from __future__ import annotations

import math

from initlab.policy.plans import KEEP
from initlab.policy.records import LayerInfo, ModelGraph, ResidualBranch
from initlab.schemes import gain as activation_gain


def fan_in_mode(info: LayerInfo | None) -> str:
    """torch's fan mode that is this layer's forward fan-in: ``fan_out`` for weights stored
    (in, out, ...) (ConvTranspose, ``transformers``' Conv1D), else ``fan_in``."""
    if info is not None and (info.kind == "conv_transpose" or info.transposed):
        return "fan_out"
    return "fan_in"


def scale_variance(scheme: str, params: dict, factor: float) -> tuple[str, dict] | None:
    """The scheme and parameters whose draws have ``factor`` times the variance of (scheme, params).

    He, LeCun and Xavier become ``variance_scaling`` with the same mode and distribution
    (``Var = scale / fan``); ``normal``/``trunc_normal`` scale ``std``; ``orthogonal`` scales its
    gain. None for a scheme this does not know (the caller keeps the original).
    """
    s = math.sqrt(factor)
    if scheme in ("zeros", KEEP):
        return scheme, dict(params)
    if scheme in ("he_normal", "he_uniform"):
        from initlab.activations import takes_param

        nonlinearity = params.get("nonlinearity", "leaky_relu")
        g = activation_gain(nonlinearity, params.get("a", 0.0) if takes_param(nonlinearity) else None)
        dist = "normal" if scheme == "he_normal" else "uniform"
        return "variance_scaling", {"scale": g * g * factor, "mode": params.get("mode", "fan_in"), "distribution": dist}
    if scheme in ("lecun_normal", "lecun_uniform"):
        dist = "truncated_normal" if scheme == "lecun_normal" else "uniform"
        return "variance_scaling", {"scale": factor, "mode": "fan_in", "distribution": dist}
    if scheme in ("xavier_uniform", "xavier_normal"):
        g = float(params.get("gain", 1.0))
        dist = "uniform" if scheme == "xavier_uniform" else "normal"
        return "variance_scaling", {"scale": g * g * factor, "mode": "fan_avg", "distribution": dist}
    if scheme == "variance_scaling":
        return scheme, {**params, "scale": float(params.get("scale", 1.0)) * factor}
    if scheme in ("normal", "trunc_normal"):
        out = {**params, "std": float(params.get("std", 1.0)) * s}
        if scheme == "trunc_normal":  # the cut stays at the same number of standard deviations
            out["a"], out["b"] = float(params.get("a", -2.0)) * s, float(params.get("b", 2.0)) * s
        return scheme, out
    if scheme == "orthogonal":
        return scheme, {**params, "gain": float(params.get("gain", 1.0)) * s}
    return None


def _variance_form(scheme: str, params: dict) -> tuple[float, str, str] | None:
    """(scale, mode, distribution) with Var = scale / fan_mode, for the fan-scaled schemes."""
    converted = scale_variance(scheme, params, 1.0)
    if converted is None or converted[0] != "variance_scaling":
        return None
    p = converted[1]
    return float(p.get("scale", 1.0)), str(p.get("mode", "fan_in")), str(p.get("distribution", "truncated_normal"))


def grouped_fans(
    scheme: str, params: dict, torch_fans: tuple[int, int], true_fans: tuple[int, int]
) -> tuple[str, dict] | None:
    """The same variance with a grouped layer's true fans instead of torch's.

    torch's ``fan_out`` of a grouped convolution counts every output channel (``out * k``),
    though each input channel reaches only ``out/groups`` of them; for a transposed one its
    ``fan_out`` (the forward fan-in) counts every input channel. Returns
    ``variance_scaling(scale', mode=fan_in)`` whose draws have ``scale / true_fan_mode``
    variance, or None when the fans agree or the scheme is not fan-scaled.
    """
    form = _variance_form(scheme, params)
    if form is None or torch_fans == true_fans:
        return None
    scale, mode, dist = form
    pick = {"fan_in": lambda f: f[0], "fan_out": lambda f: f[1], "fan_avg": lambda f: (f[0] + f[1]) / 2}[mode]
    if pick(torch_fans) == pick(true_fans):
        return None
    return "variance_scaling", {
        "scale": scale * torch_fans[0] / pick(true_fans),
        "mode": "fan_in",
        "distribution": dist,
    }


def branch_positions(graph: ModelGraph) -> dict[str, tuple[ResidualBranch, int]]:
    """Layer name -> (its residual branch, its position in the branch); the first branch wins."""
    out: dict[str, tuple[ResidualBranch, int]] = {}
    for branch in graph.branches:
        for i, name in enumerate(branch.layers):
            out.setdefault(name, (branch, i))
    return out


def fixup_factor(n_branches: int, m: int) -> float:
    """Fixup's variance factor ``L^(-1/(m-1))`` (std ``L^(-1/(2m-2))``) for a branch of m layers."""
    if m < 2 or n_branches < 1:
        return 1.0
    return n_branches ** (-1.0 / (m - 1))


def fixup_text(n_branches: int, m: int) -> str:
    return (
        f"x L^(-1/(2m-2)) = {n_branches}^(-1/{2 * m - 2}) = {n_branches ** (-1.0 / (2 * m - 2)):.4g} "
        f"(Fixup, Zhang et al. 2019: L = {n_branches} residual branches, m = {m} layers in this one)"
    )
