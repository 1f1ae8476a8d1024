"""The mean-field prediction for a model that is a chain the theory covers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from initlab import theory
from initlab.diagnose.result import LayerStats, Predicted

# Relative size of a weight's mean beyond which i.i.d. zero-mean theory does not apply
# (|mean| / rms: 0.8 for the half-normal "positive" scheme, 1 for "constant", ~1/sqrt(n) for
# zero-mean draws).
MAX_WEIGHT_MEAN = 0.1


@dataclass
class ChainLayer:
    """What the prediction needs about one weighted layer of a chain."""

    module: nn.Module
    activation: nn.Module | None  # the activation module applied to this layer's output
    elements: int  # output elements per sample (units × positions)


def predict_chain(
    chain: list[ChainLayer],
    layers: list[LayerStats],
    q0: float,
) -> tuple[list[Predicted] | None, str]:
    """``(predictions, note)`` for a chain; ``(None, reason)`` when the theory does not apply.

    Per layer ``σ_w² = fan_in · mean(W²)`` and ``σ_b² = mean(b²)`` are read off the actual
    weights; ``q^1`` starts from the input's ``q0 = mean(x²)``. The backward prediction is
    ``theory.gradient_map`` with ``N_l`` = output elements per sample (so strided
    convolutions and flattening are accounted for), anchored at the last layer's measured
    ``grad_var``. Convolutions are treated like dense layers over their receptive field: zero
    padding at the borders makes the measured second moments a little smaller.
    """
    sigma_w2s, sigma_b2s = [], []
    for link, stats in zip(chain, layers):
        w = link.module.weight.detach().double()
        rms = float(w.pow(2).mean().sqrt())
        if rms > 0 and abs(float(w.mean())) > MAX_WEIGHT_MEAN * rms:
            return None, (
                f"no prediction: the weights of {stats.name} are not zero-mean (mean/rms = {float(w.mean()) / rms:.2f}); "
                "mean-field theory assumes i.i.d. zero-mean weights"
            )
        sigma_w2s.append(stats.sigma_w2)
        bias = getattr(link.module, "bias", None)
        sigma_b2s.append(
            float(bias.detach().double().pow(2).mean()) if isinstance(bias, torch.Tensor) and bias.numel() else 0.0
        )
    acts = [link.activation if link.activation is not None else "linear" for link in chain[:-1]]
    qs = theory.variance_map(acts, sigma_w2s, sigma_b2s, q0)
    grads = theory.gradient_map(acts, sigma_w2s, qs, [link.elements for link in chain], g_out=layers[-1].grad_var)
    return [Predicted(s.name, q, g) for s, q, g in zip(layers, qs, grads)], ""
