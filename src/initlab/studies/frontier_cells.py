"""One cell of the depth-frontier study: a plain network, its init, the theory at init, its training.

Networks (no normalization, no residual connection, biases zero):

- ``mlp``: ``depth`` Linear layers of ``width`` units (depth - 1 hidden activations);
- ``cnn``: ``depth - 1`` 3x3 convolutions of ``width`` channels (zero padding 1, stride 1, so the
  8x8 digit keeps its size), each followed by the activation, then a Linear read-out of the
  flattened ``width x 8 x 8`` features: ``depth`` weight layers in all, as for the MLP.

Schemes: torch's default ``U(±1/sqrt(fan_in))`` (``torch_default``), Xavier uniform with the
activation's gain, He normal, orthogonal at gain 1, ``auto`` (``initlab.initialize(net, "auto")``),
``looks_linear`` (Balduzzi et al. 2017) and, for convolutions, ``delta_orthogonal`` (Xiao et al.
2018: an orthogonal matrix on the kernel's centre tap, zeros elsewhere) at the depth-critical
gain auto computes for the same chain, with a Xavier (gain 1) read-out.

A cell (family, activation, scheme, depth, seed): initialize with per-parameter generators from
the seed; measure the Jacobian spread at init; ``initlab.suggest_lr`` (Adam) picks the rate from
that init on a validation split of the training set; a copy trains ``epochs`` epochs on the whole
training set at that rate and is tested once.
"""

from __future__ import annotations

import math
import time
from typing import Any

FAMILIES = ("mlp", "cnn")
IMAGE_SIDE = 8  # digits: 8x8


def plain_mlp(activation: str, depth: int, width: int, inputs: int, classes: int):
    """``depth`` Linear layers (depth - 1 hidden activations), no normalization, no skip."""
    from torch import nn

    from initlab.activations import activation_module

    layers: list[nn.Module] = [nn.Linear(inputs, width), activation_module(activation)]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), activation_module(activation)]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def plain_cnn(activation: str, depth: int, channels: int, in_channels: int, side: int, classes: int):
    """``depth - 1`` 3x3 same-size convolutions with the activation, then a Linear read-out."""
    from torch import nn

    from initlab.activations import activation_module

    layers: list[nn.Module] = []
    for i in range(depth - 1):
        layers += [
            nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1),
            activation_module(activation),
        ]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, classes))


def build(family: str, activation: str, depth: int, width: int, data):
    classes = int(data.y_train.max()) + 1
    if family == "cnn":
        return plain_cnn(activation, depth, width, data.x_train.shape[1], data.x_train.shape[-1], classes)
    return plain_mlp(activation, depth, width, data.x_train.shape[1], classes)


def weight_positions(model) -> list[tuple[str, str]]:
    """(weight name, "first" | "hidden" | "last") for every Linear/Conv2d, in order."""
    from torch import nn

    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return [
        (f"{name}.weight", "first" if i == 0 else "last" if i == len(names) - 1 else "hidden")
        for i, name in enumerate(names)
    ]


def looks_linear_policy(model) -> dict[str, Any]:
    """looks_linear on every weight (first / hidden / last positions), biases zero."""
    return {name: {"name": "looks_linear", "params": {"position": pos}} for name, pos in weight_positions(model)}


def delta_orthogonal_policy(model, activation: str) -> dict[str, Any]:
    """delta_orthogonal at the depth-critical gain on the convolutions; Xavier (gain 1) read-out.

    The gain is the one ``auto`` gives the same plain chain (``initlab.policy.depth_critical_gain``
    over its hidden layers); with a delta kernel the convolution is an orthogonal map of each
    pixel's channel vector at init, so the chain has the MLP's dynamical isometry.
    """
    from initlab.policy import depth_critical_gain

    positions = weight_positions(model)
    gain = depth_critical_gain(activation, None, len(positions) - 1) or 1.0
    policy: dict[str, Any] = {}
    for name, pos in positions:
        if pos == "last":
            policy[name] = {"name": "xavier_uniform", "params": {"gain": 1.0}}
        else:
            policy[name] = {"name": "delta_orthogonal", "params": {"gain": gain}}
    return policy


def initialize(model, scheme: str, activation: str, seed: int) -> None:
    import initlab

    if scheme == "auto":
        initlab.initialize(model, "auto", seed=seed)
    elif scheme == "looks_linear":
        initlab.initialize(model, looks_linear_policy(model), seed=seed)
    elif scheme == "delta_orthogonal":
        initlab.initialize(model, delta_orthogonal_policy(model, activation), seed=seed)
    elif scheme == "xavier_uniform":
        gain = initlab.gain(activation)
        initlab.initialize(model, {"*.weight": {"name": "xavier_uniform", "params": {"gain": gain}}}, seed=seed)
    elif scheme == "he_normal":
        initlab.initialize(
            model, {"*.weight": {"name": "he_normal", "params": {"nonlinearity": activation}}}, seed=seed
        )
    else:
        initlab.initialize(model, scheme, seed=seed)


def sigma_w2(scheme: str, activation: str, depth: int) -> float | None:
    """The weight variance times fan_in on square layers (the mean-field sigma_w^2); None: not Gaussian-like."""
    import initlab
    from initlab.policy import depth_critical_gain

    if scheme == "torch_default":
        return 1.0 / 3.0
    if scheme in ("xavier_uniform", "he_normal"):
        return initlab.gain(activation) ** 2
    if scheme == "orthogonal":
        return 1.0
    if scheme in ("auto", "delta_orthogonal"):
        if activation == "relu":
            return 2.0  # auto gives He to homogeneous activations
        sigma = depth_critical_gain(activation, None, depth - 1)
        return None if sigma is None else sigma * sigma
    return None  # looks_linear: a linear map at init, no mean-field depth scale


def six_xi_c(scheme: str, activation: str, depth: int) -> float:
    from initlab import theory

    s2 = sigma_w2(scheme, activation, depth)
    if s2 is None:
        return math.inf
    return 6.0 * theory.depth_scales(activation, s2, 0.0)[1]


def jacobian_spread(model, x) -> float:
    """Mean over samples of log10(s_max / s_min) of the input-output Jacobian."""
    import torch

    from initlab.diagnose.jacobian import jacobian_singular_values

    with torch.random.fork_rng(devices=[]):
        try:
            singular, _ = jacobian_singular_values(model, x)
        except RuntimeError:  # a non-finite Jacobian (chaotic init overflowing float32): no finite spread
            return math.inf
    ratio = singular[:, 0].double() / singular[:, -1].double().clamp_min(1e-300)
    spread = float(torch.log10(ratio).mean())
    return spread if math.isfinite(spread) else math.inf


def run_cell(
    family: str, activation: str, scheme: str, depth: int, seed: int, s: dict[str, Any], data
) -> dict[str, Any]:
    """One cell: lr from suggest_lr, then train and test once. ``s``: the depth's settings.

    Returns the row (what the study reads back from the store) plus ``epochs``: the engine's
    per-epoch records of the training run.
    """
    import copy
    from types import SimpleNamespace

    from initlab.engine import Member, TrainConfig, train
    from initlab.lr import suggest_lr

    start = time.perf_counter()
    model = build(family, activation, depth, s["width"], data)
    initialize(model, scheme, activation, seed)
    spread = jacobian_spread(model, data.x_train[:8])
    suggestion = suggest_lr(
        model,
        data.x_train,
        data.y_train,
        optimizer="adam",
        grid=s["lr_grid"],
        steps=s["lr_steps"],
        batch_size=s["batch_size"],
        seed=seed,
    )
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}

    def as_initialized(copy_, _seed):
        copy_.load_state_dict(state)

    config = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], optimizer="adam", lr=suggestion.lr)
    result = train(
        lambda: copy.deepcopy(model),
        [Member(as_initialized, seed, name=scheme)],
        SimpleNamespace(x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test),
        config,
    )
    member = result.members[0]
    last = member.records[-1]
    return {
        "family": family,
        "activation": activation,
        "scheme": scheme,
        "depth": depth,
        "seed": seed,
        "lr": suggestion.lr,
        "lr_ok": suggestion.ok,
        "lr_grid": list(suggestion.grid),
        "lr_val_loss": list(suggestion.val_loss),
        "lr_val_acc": list(suggestion.val_acc),
        "lr_seconds": suggestion.seconds,
        "test_acc": member.test_acc,
        "test_loss": member.test_loss,
        "train_loss": last.train_loss,
        "train_acc": last.train_acc,
        "status": member.status,
        "diverged_step": member.diverged_step,
        "jacobian_spread": spread,
        "six_xi_c": six_xi_c(scheme, activation, depth),
        "seconds": time.perf_counter() - start,
        "epochs": [r.to_dict() for r in member.records],
    }
