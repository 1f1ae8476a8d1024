"""The model families: MLP, small CNN, residual MLP and residual CNN.

Every model is an ``nn.Sequential`` whose children run in registration order and carry names
(``fc1``, ``act1``, ..., ``out``): each Linear/Conv and the activation module after it are
separate children, so the policy and the diagnose hooks can read which activation follows
which layer. Each model keeps the arguments that rebuild it in ``.spec``.

Builders validate their arguments; they do not decide the weights' values: ``build`` (or
``default_init_``) writes them from named generators, so the global RNG is never used.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from initlab import checks
from initlab.activations import activation_module, canonical
from initlab.errors import UserError

NORMS = (None, "batch", "layer")


def _int(name: str, value: Any, minimum: int) -> int:
    return checks.integer(name, value, minimum=minimum)


def _shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise UserError(f"input_shape={input_shape!r} is invalid; allowed: a tuple of positive integers")
    return shape


def _norm_name(norm: Any) -> str | None:
    if norm in (None, "none", "None"):
        return None
    if norm not in NORMS:
        raise UserError(f"norm={norm!r} is invalid; allowed: None, 'batch', 'layer'")
    return norm


class MLP(nn.Sequential):
    """``flatten → fc1 → act1 → … → fc{depth} → act{depth} → out``.

    ``depth`` hidden layers of ``width`` units, each a Linear followed by its activation; the
    output Linear ``out`` has no activation (logits). ``depth=0`` is a linear classifier.
    The article's network 784-256-256-10 is ``mlp(784, 10, width=256, depth=2)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        depth: int,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        in_features, out_features = _int("in_features", in_features, 1), _int("out_features", out_features, 1)
        width, depth = _int("width", width, 1), _int("depth", depth, 0)
        act = canonical(activation)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        fan_in = in_features
        for i in range(1, depth + 1):
            layers[f"fc{i}"] = nn.Linear(fan_in, width, bias=bool(bias))
            layers[f"act{i}"] = activation_module(act)
            fan_in = width
        layers["out"] = nn.Linear(fan_in, out_features, bias=bool(bias))
        super().__init__(layers)
        self.activation = act
        self.widths = (in_features,) + (width,) * depth + (out_features,)
        self.spec = {
            "arch": "mlp",
            "in_features": in_features,
            "out_features": out_features,
            "width": width,
            "depth": depth,
            "activation": act,
            "bias": bool(bias),
        }

    def linears(self) -> list[nn.Linear]:
        """The Linear layers in order, hidden then output."""
        return [m for m in self if isinstance(m, nn.Linear)]


def mlp(
    in_features: int,
    out_features: int,
    width: int,
    depth: int,
    activation: str = "relu",
    bias: bool = True,
) -> MLP:
    """A multilayer perceptron with ``depth`` hidden layers; see ``MLP``."""
    return MLP(in_features, out_features, width, depth, activation, bias)


def _conv_parts(input_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...], type, type, type, list[nn.Module]]:
    """Channels, spatial size, Conv/Pool/BatchNorm classes and a prefix module for an input shape."""
    if len(input_shape) == 1:  # a flat signal: one channel
        return 1, input_shape, nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d, [nn.Unflatten(1, (1, input_shape[0]))]
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1:], nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d, []
    if len(input_shape) == 3:
        return input_shape[0], input_shape[1:], nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, []
    raise UserError(
        f"input_shape={input_shape!r} is invalid for a CNN; allowed: (C, H, W) images, (C, L) or (L,) signals"
    )


def _conv_sizes(
    input_shape: Any, num_classes: Any, width: Any, depth: Any, min_depth: int
) -> tuple[tuple[int, ...], int, int, int]:
    """A conv net's input shape, classes, width and depth, checked (``UserError`` naming the bad one)."""
    return (
        _shape(input_shape),
        _int("num_classes", num_classes, 1),
        _int("width", width, 1),
        _int("depth", depth, min_depth),
    )


def _pool_while_wide(
    layers: OrderedDict[str, nn.Module], block: int, pool: type, size: tuple[int, ...]
) -> tuple[int, ...]:
    """Adds ``pool{block}`` (2x max pooling) while the feature map is at least 2 wide; the new size."""
    if min(size) < 2:
        return size
    layers[f"pool{block}"] = pool(2)
    return tuple(s // 2 for s in size)


def _add_conv_head(
    layers: OrderedDict[str, nn.Module], width: int, size: tuple[int, ...], num_classes: int, bias: bool
) -> None:
    """``flatten → out``: the last feature map into one Linear to ``num_classes`` logits."""
    layers["flatten"] = nn.Flatten()
    layers["out"] = nn.Linear(width * math.prod(size), num_classes, bias=bool(bias))


class CNN(nn.Sequential):
    """``conv1 → act1 → pool1 → … → conv{depth} → act{depth} → pool{depth} → flatten → out``.

    Each block: a 3×3 convolution (3 for 1-D signals, padding 1, ``width`` channels), the
    activation, then 2× max pooling while the feature map is at least 2 wide (28 → 14 → 7 → 3 → 1).
    The head flattens the last feature map into one Linear to ``num_classes`` logits.
    Input: ``(C, H, W)`` images (Conv2d), ``(C, L)`` signals (Conv1d), or ``(L,)`` flat signals
    (seen as one channel; e.g. MNIST-1D).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        width: int = 32,
        depth: int = 2,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        shape, num_classes, width, depth = _conv_sizes(input_shape, num_classes, width, depth, min_depth=1)
        act = canonical(activation)
        channels, size, conv, pool, _, prefix = _conv_parts(shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if prefix:
            layers["unflatten"] = prefix[0]
        for i in range(1, depth + 1):
            layers[f"conv{i}"] = conv(channels, width, 3, padding=1, bias=bool(bias))
            layers[f"act{i}"] = activation_module(act)
            size = _pool_while_wide(layers, i, pool, size)
            channels = width
        _add_conv_head(layers, width, size, num_classes, bias)
        super().__init__(layers)
        self.activation = act
        self.spec = {
            "arch": "cnn",
            "input_shape": list(shape),
            "num_classes": num_classes,
            "width": width,
            "depth": depth,
            "activation": act,
            "bias": bool(bias),
        }


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 32,
    depth: int = 2,
    activation: str = "relu",
    bias: bool = True,
) -> CNN:
    """A small CNN of ``depth`` conv-activation-pool blocks; see ``CNN``."""
    return CNN(input_shape, num_classes, width, depth, activation, bias)


class ResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, "Identity Mappings in Deep Residual Networks").

    .. math:: y = x + f_2(\\phi(N_2(f_1(\\phi(N_1(x))))))

    Children in execution order: ``norm1, act1, fc1, norm2, act2, fc2`` (``conv1``/``conv2``
    for the convolutional block; no norm children when ``norm`` is None). The skip path is the
    identity, so at init the block adds its branch to an unchanged signal; a policy that wants
    each block to start as the identity zeroes ``fc2``/``conv2`` (Goyal et al. 2017, Fixup).
    """

    def __init__(self, make_layer, make_norm, activation: str, layer_name: str = "fc") -> None:
        super().__init__()
        for i in (1, 2):
            if make_norm is not None:
                self.add_module(f"norm{i}", make_norm())
            self.add_module(f"act{i}", activation_module(activation))
            self.add_module(f"{layer_name}{i}", make_layer())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for module in self.children():
            h = module(h)
        return x + h


def _mlp_norm(norm: str | None, width: int):
    if norm == "batch":
        return lambda: nn.BatchNorm1d(width)
    if norm == "layer":
        return lambda: nn.LayerNorm(width)
    return None


def _conv_norm(norm: str | None, width: int, batch_norm: type):
    if norm == "batch":
        return lambda: batch_norm(width)
    if norm == "layer":  # normalizes over (C, *spatial) per sample, as LayerNorm does for a vector
        return lambda: nn.GroupNorm(1, width)
    return None


class ResMLP(nn.Sequential):
    """``flatten → stem → block1 … block{depth} → [norm] → act → out``: a pre-activation residual MLP.

    ``stem`` maps the input to ``width``; each ``block{i}`` is a ``ResidualBlock`` with two
    ``width × width`` Linears (``fc1``, ``fc2``); the head normalizes (when ``norm``), applies the
    activation and maps to ``out_features`` logits. ``norm``: None, ``"batch"`` (BatchNorm1d)
    or ``"layer"`` (LayerNorm).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        depth: int,
        activation: str = "relu",
        norm: str | None = None,
        bias: bool = True,
    ) -> None:
        in_features, out_features = _int("in_features", in_features, 1), _int("out_features", out_features, 1)
        width, depth = _int("width", width, 1), _int("depth", depth, 0)
        act, norm = canonical(activation), _norm_name(norm)
        make_norm = _mlp_norm(norm, width)
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            flatten=nn.Flatten(), stem=nn.Linear(in_features, width, bias=bool(bias))
        )
        for i in range(1, depth + 1):
            layers[f"block{i}"] = ResidualBlock(lambda: nn.Linear(width, width, bias=bool(bias)), make_norm, act)
        if make_norm is not None:
            layers["norm"] = make_norm()
        layers["act"] = activation_module(act)
        layers["out"] = nn.Linear(width, out_features, bias=bool(bias))
        super().__init__(layers)
        self.activation = act
        self.spec = {
            "arch": "resmlp",
            "in_features": in_features,
            "out_features": out_features,
            "width": width,
            "depth": depth,
            "activation": act,
            "norm": norm,
            "bias": bool(bias),
        }


def resmlp(
    in_features: int,
    out_features: int,
    width: int,
    depth: int,
    activation: str = "relu",
    norm: str | None = None,
    bias: bool = True,
) -> ResMLP:
    """A pre-activation residual MLP with ``depth`` two-layer blocks; see ``ResMLP``."""
    return ResMLP(in_features, out_features, width, depth, activation, norm, bias)


class ResCNN(nn.Sequential):
    """``stem → block1 → pool1 → … → block{depth} → pool{depth} → [norm] → act → flatten → out``.

    ``stem``: 3×3 conv to ``width`` channels; each ``block{i}`` a pre-activation ``ResidualBlock``
    of two 3×3 convs (``conv1``, ``conv2``) at constant width, then 2× max pooling while the
    map is at least 2 wide (as ``CNN``). ``norm``: None, ``"batch"`` (BatchNorm) or ``"layer"``
    (GroupNorm with one group: per-sample over channels and positions).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        width: int = 32,
        depth: int = 2,
        activation: str = "relu",
        norm: str | None = None,
        bias: bool = True,
    ) -> None:
        shape, num_classes, width, depth = _conv_sizes(input_shape, num_classes, width, depth, min_depth=0)
        act, norm = canonical(activation), _norm_name(norm)
        channels, size, conv, pool, batch_norm, prefix = _conv_parts(shape)
        make_norm = _conv_norm(norm, width, batch_norm)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if prefix:
            layers["unflatten"] = prefix[0]
        layers["stem"] = conv(channels, width, 3, padding=1, bias=bool(bias))
        for i in range(1, depth + 1):
            layers[f"block{i}"] = ResidualBlock(
                lambda: conv(width, width, 3, padding=1, bias=bool(bias)), make_norm, act, "conv"
            )
            size = _pool_while_wide(layers, i, pool, size)
        if make_norm is not None:
            layers["norm"] = make_norm()
        layers["act"] = activation_module(act)
        _add_conv_head(layers, width, size, num_classes, bias)
        super().__init__(layers)
        self.activation = act
        self.spec = {
            "arch": "rescnn",
            "input_shape": list(shape),
            "num_classes": num_classes,
            "width": width,
            "depth": depth,
            "activation": act,
            "norm": norm,
            "bias": bool(bias),
        }


def rescnn(
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 32,
    depth: int = 2,
    activation: str = "relu",
    norm: str | None = None,
    bias: bool = True,
) -> ResCNN:
    """A pre-activation residual CNN with ``depth`` blocks; see ``ResCNN``."""
    return ResCNN(input_shape, num_classes, width, depth, activation, norm, bias)
