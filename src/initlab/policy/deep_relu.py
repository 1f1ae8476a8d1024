"""Where a plain ReLU chain stops training at He's init, and the layers looks-linear then takes.

He's Gaussian weights keep a ReLU chain's mean squared activation constant, but not its
fluctuations: the log of the squared activation length has variance about 5 * sum_l 1/n_l
(Hanin & Rolnick 2018, failure mode 2), so a chain deeper than about width / 5 is predicted not to
train. There the auto policy uses looks-linear weights (``initlab.policy.rules.looks_linear_rule``).
"""

from __future__ import annotations

from typing import cast

import torch

from initlab.layers import SCALED_KINDS
from initlab.policy.records import ModelGraph

# A chain of fewer weight layers is not "deep": the per-activation defaults apply.
DEEP_PLAIN_MIN_DEPTH = 8
# Hanin & Rolnick (2018): with He's init the log of a ReLU net's squared activation length has
# variance ~ 5 * sum_l 1/n_l; the chain is predicted trainable while that stays below 1.
HANIN_ROLNICK_BETA = 5.0


def he_trainable_depth(width: int) -> float:
    """He's predicted trainable depth of a plain ReLU chain of ``width`` units: 5 * depth / width = 1.

    Source: Hanin & Rolnick (2018), How to start training: the effect of initialization and
    architecture (failure mode 2: the fluctuations of the activation length grow as
    exp(5 sum_l 1/n_l) at He's init, so depth must stay well below width / 5).
    """
    return width / HANIN_ROLNICK_BETA


def looks_linear_chain(graph: ModelGraph) -> dict[str, str]:
    """Positions for ``looks_linear_rule`` when ``graph`` is a plain chain of ReLU Linear layers
    (every layer but the output followed by ReLU, even widths) with 5 * sum_l 1/n_l > 1; else {}."""
    layers = [info for info in graph.weight_layers() if info.kind in SCALED_KINDS and info.parent is None]
    # Linear layers only: a reshape between conv and linear layers would have to keep the mirrored halves apart.
    if len(layers) < DEEP_PLAIN_MIN_DEPTH or not layers[-1].output or any(i.kind != "linear" for i in layers):
        return {}
    hidden = layers[:-1]
    if any(info.activation != "relu" for info in hidden):
        return {}
    widths = [int(cast(torch.Tensor, info.module.weight).shape[0]) for info in hidden]
    if any(w % 2 for w in widths) or HANIN_ROLNICK_BETA * sum(1.0 / w for w in widths) <= 1.0:
        return {}
    positions = {info.name: "hidden" for info in hidden}
    positions[hidden[0].name] = "first"
    positions[layers[-1].name] = "last"
    return positions
