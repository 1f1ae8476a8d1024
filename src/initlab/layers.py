"""What a layer is: the one taxonomy of modules and activations the rest of initlab asks.

``module_kind(module)`` sorts any ``nn.Module`` into one of

- weight layers: ``linear``, ``bilinear``, ``conv``, ``conv_transpose``;
- units whose weights are handled as one: ``rnn``, ``attention`` (``nn.MultiheadAttention``);
- ``embedding``, ``norm``, ``activation``, ``scale`` (a per-channel or scalar multiplier such as
  layer-scale, which keeps a zero input at zero), ``transparent`` (reshapes, pools, dropout,
  DropPath/StochasticDepth), ``container`` (a module with children) and ``other``.

It knows the layers of the ecosystem that are not ``torch.nn`` classes, first by class name
(``transformers``' ``Conv1D``, ``GELUActivation``, ``NewGELUActivation``, ``SiLUActivation``,
``LlamaRMSNorm``; timm's ``DropPath``, ``LayerScale``, ``GELU``, ``RmsNorm``, ...), then by
behaviour where the class is unknown: a childless, parameter-free module that maps a probe
tensor as a registered activation does is that activation; a childless module with one 1-D
``weight`` whose output does not change when its input is scaled is a normalization.

Activation traits (``RECTIFIERS``, ``HOMOGENEOUS``, ``SATURATING``) and the call helpers
(``call_model``, ``eval_mode``, ``first_tensor``) live here as well, so the policy, diagnose,
the engine and the model builders agree on them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from initlab.activations import MODULE_NAMES, get_activation, module_param

# --- activation traits ---------------------------------------------------------------------------

# Derivative near 1 on a half-line (or non-saturating): He-style variance scaling with the
# activation's gain keeps the forward variance (He et al. 2015).
RECTIFIERS = ("relu", "leaky_relu", "relu6", "elu", "celu", "gelu", "silu", "mish", "softplus", "hardswish")
# Positively homogeneous (phi(cx) = c phi(x), c > 0): every variance is a fixed point at He's gain.
HOMOGENEOUS = ("relu", "leaky_relu", "relu6")
# Bounded activations: Glorot & Bengio's analysis is for these.
SATURATING = ("tanh", "sigmoid", "softsign", "hardtanh", "hardsigmoid")
# name -> predicate on the activation's output: True where the entry sits in a flat tail.
SATURATION_TESTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda a: a.abs() > 0.99,
    "hardtanh": lambda a: a.abs() > 0.99,
    "softsign": lambda a: a.abs() > 0.99,
    "sigmoid": lambda a: (a < 0.01) | (a > 0.99),
    "hardsigmoid": lambda a: (a <= 0.0) | (a >= 1.0),
}

# --- module classes ------------------------------------------------------------------------------

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
BATCH_NORM_TYPES = (nn.modules.batchnorm._NormBase,)
RECURRENT_TYPES = (nn.RNNBase, nn.RNNCellBase)
EMBEDDING_TYPES = (nn.Embedding, nn.EmbeddingBag)
ACTIVATION_TYPES: tuple[type, ...] = tuple(t for t in MODULE_NAMES if t is not nn.Identity) + (nn.PReLU, nn.RReLU)
DROPOUT_TYPES = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)
POOL_TYPES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
TRANSPARENT_TYPES: tuple[type, ...] = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
    *DROPOUT_TYPES,
    *POOL_TYPES,
    nn.modules.pooling._LPPoolNd,
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
)
# Transparent modules that keep an all-zero input at zero (softmax and padding with a value do not).
ZERO_PRESERVING_TYPES = (nn.Identity, nn.Flatten, nn.Unflatten, *DROPOUT_TYPES, *POOL_TYPES)
# Activations applied entry by entry with no parameter of their own (engine.mlp runs them batched).
ELEMENTWISE_ACTIVATION_TYPES: tuple[type, ...] = tuple(t for t in ACTIVATION_TYPES if t not in (nn.PReLU, nn.RReLU)) + (
    nn.Tanhshrink,
    nn.LogSigmoid,
)
UNIT_TYPES: tuple[type, ...] = (nn.MultiheadAttention,) + RECURRENT_TYPES
WEIGHT_LAYER_TYPES = (nn.Linear, nn.Bilinear) + CONV_TYPES + CONV_TRANSPOSE_TYPES

# Classes outside torch.nn, by class name (the packages are optional; nothing is imported).
# transformers.pytorch_utils.Conv1D: a Linear whose weight is stored (in, out).
TRANSPOSED_LINEAR_NAMES = frozenset({"Conv1D"})
FOREIGN_ACTIVATIONS: dict[str, str] = {
    "GELUActivation": "gelu",
    "NewGELUActivation": "gelu",
    "GELUTanh": "gelu",
    "PytorchGELUTanh": "gelu",
    "FastGELUActivation": "gelu",
    "QuickGELUActivation": "gelu",
    "AccurateGELUActivation": "gelu",
    "GELUTanhActivation": "gelu",
    "SiLUActivation": "silu",
    "SiLU": "silu",
    "Swish": "silu",
    "GELU": "gelu",
    "MishActivation": "mish",
    "Mish": "mish",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "HardMish": "mish",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "PReLU": "leaky_relu",
    "ReLU6": "relu6",
    "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid",
}
FOREIGN_TRANSPARENT = frozenset({"DropPath", "StochasticDepth", "DropBlock2d", "PatchDropout", "Dropout"})
FOREIGN_SCALE = frozenset({"LayerScale", "LayerScale2d", "Scale"})
FOREIGN_NORM_SUFFIXES = ("RMSNorm", "RmsNorm", "LayerNorm", "LayerNorm2d", "GroupNorm", "BatchNorm2d", "Norm")

# Kinds that take part in the data flow as a layer (a following layer means "no activation").
FLOW_LAYER_KINDS = ("linear", "bilinear", "conv", "conv_transpose", "rnn", "attention", "embedding")
# Kinds whose weight a rule scales by the following activation.
SCALED_KINDS = ("linear", "conv", "conv_transpose")
# Kinds the module walkers treat as leaves (their children are not separate layers).
LEAF_KINDS = FLOW_LAYER_KINDS + ("norm", "activation", "transparent", "scale")

_PROBE = torch.linspace(-4.0, 4.0, 97, dtype=torch.float64)


def _own_params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module._parameters.items() if v is not None}


def _childless(module: nn.Module) -> bool:
    return not any(True for _ in module.children())


def is_transposed_linear(module: nn.Module) -> bool:
    """``transformers``' ``Conv1D``: ``y = x @ W + b`` with ``W`` stored (in, out), not torch's (out, in)."""
    weight = module._parameters.get("weight")
    return type(module).__name__ in TRANSPOSED_LINEAR_NAMES and isinstance(weight, torch.Tensor) and weight.dim() == 2


def _acts_as(module: nn.Module) -> str | None:
    """The registered activation a childless, parameter-free module computes, judged on a probe."""
    from initlab.activations import (
        names,  # the registry's own list, hardsigmoid included
    )

    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = module(_PROBE.clone())
    except Exception:  # noqa: BLE001 - an unknown module on a probe: not an activation
        return None
    if not isinstance(out, torch.Tensor) or out.shape != _PROBE.shape:
        return None
    for name in names():
        if name == "linear":
            continue
        expected = get_activation(name)(_PROBE)
        if torch.allclose(out.double(), expected, rtol=1e-3, atol=1e-3):
            return name
    return None


def _normalises(module: nn.Module) -> bool:
    """A childless module with one 1-D ``weight`` whose output is invariant to scaling its input."""
    weight = module._parameters.get("weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or not _childless(module):
        return False
    if set(_own_params(module)) - {"weight", "bias"}:
        return False
    n = weight.numel()
    gen = torch.Generator().manual_seed(0)
    for shape in ((3, n), (3, n, 2, 2)):
        x = torch.randn(shape, generator=gen, dtype=weight.dtype if weight.dtype.is_floating_point else torch.float32)
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                a, b = module(x), module(7.0 * x)
        except Exception:  # noqa: BLE001, S112 - wrong input layout for this module: try the next
            continue
        if isinstance(a, torch.Tensor) and a.shape == x.shape:
            return bool(torch.allclose(a, b, rtol=1e-3, atol=1e-4 * (float(a.abs().max()) + 1e-12)))
    return False


# Kinds found by behaviour, per module object (probing runs the module: do it once, before any trace).
_KIND_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[type, str]] = weakref.WeakKeyDictionary()


_ACT_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[type, str | None]] = weakref.WeakKeyDictionary()


# torch.nn's own modules by kind, checked in this order (a subclass takes its first match).
_KIND_OF_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (nn.Linear, "linear"),
    (nn.Bilinear, "bilinear"),
    (CONV_TYPES, "conv"),
    (CONV_TRANSPOSE_TYPES, "conv_transpose"),
    (NORM_TYPES, "norm"),
    (RECURRENT_TYPES, "rnn"),
    (nn.MultiheadAttention, "attention"),
    (EMBEDDING_TYPES, "embedding"),
    (ACTIVATION_TYPES, "activation"),
    (TRANSPARENT_TYPES, "transparent"),
)


def module_kind(module: nn.Module) -> str:
    """linear, bilinear, conv, conv_transpose, norm, rnn, attention, embedding, activation,
    scale, transparent, container or other (see the module docstring)."""
    if is_transposed_linear(module):
        return "linear"
    for types, kind in _KIND_OF_TYPES:
        if isinstance(module, types):
            return kind
    cached = _KIND_CACHE.get(module)
    if cached is not None and cached[0] is type(module):
        return cached[1]
    kind = _foreign_kind(module)
    _KIND_CACHE[module] = (type(module), kind)
    return kind


def _foreign_kind(module: nn.Module) -> str:
    name = type(module).__name__
    params = _own_params(module)
    if name in FOREIGN_TRANSPARENT and not params:
        return "transparent"
    if name in FOREIGN_SCALE or (_childless(module) and len(params) == 1 and name.lower().endswith("scale")):
        return "scale"
    if name in FOREIGN_ACTIVATIONS and not params and _childless(module):
        return "activation"
    weight = params.get("weight")
    if name.endswith(FOREIGN_NORM_SUFFIXES) and isinstance(weight, torch.Tensor) and weight.dim() == 1:
        return "norm"
    # probing runs the module: only where that cannot change state (no buffers such as running stats)
    probe_safe = _childless(module) and not any(True for _ in module.buffers(recurse=False))
    if probe_safe and _normalises(module):
        return "norm"
    if probe_safe and not params and _acts_as(module) is not None:
        return "activation"
    return "other" if _childless(module) else "container"


def activation_of_module(module: nn.Module) -> tuple[str, float | None] | None:
    """(registered activation name, parameter) for an activation module, else None."""
    if isinstance(module, nn.PReLU):
        # He et al. 2015 introduced PReLU with this very gain: a leaky ReLU at the initial slope.
        return "leaky_relu", float(module.weight.detach().float().mean())
    if isinstance(module, nn.RReLU):
        return "leaky_relu", (float(module.lower) + float(module.upper)) / 2.0
    name = MODULE_NAMES.get(type(module))
    if name is None:
        name = next((n for t, n in MODULE_NAMES.items() if isinstance(module, t)), None)
    if name is not None:
        return None if name == "linear" else (name, module_param(module))
    if module_kind(module) != "activation":
        return None
    cached = _ACT_CACHE.get(module)
    if cached is None or cached[0] is not type(module):
        # behaviour decides when the name and the values disagree (a subclass may change forward)
        cached = (type(module), _acts_as(module) or FOREIGN_ACTIVATIONS.get(type(module).__name__))
        _ACT_CACHE[module] = cached
    return (cached[1], None) if cached[1] is not None else None


def is_leaf(module: nn.Module) -> bool:
    """A module the policy treats as one layer (its children, if any, are not separate layers)."""
    return isinstance(module, UNIT_TYPES) or module_kind(module) in LEAF_KINDS


def owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def is_norm(module: nn.Module) -> bool:
    return module_kind(module) == "norm"


def maps_zero_to_zero(module: nn.Module) -> bool:
    """Whether a transparent or scaling module keeps an all-zero input at zero."""
    return (
        isinstance(module, ZERO_PRESERVING_TYPES)
        or module_kind(module) == "scale"
        or (type(module).__name__ in FOREIGN_TRANSPARENT)
    )


def weight_fans(module: nn.Module) -> tuple[int, int] | None:
    """(fan_in, fan_out) of a weight layer in its own forward sense, groups included.

    torch's ``_calculate_fan_in_and_fan_out`` reads ``(out, in/groups, *k)``: its fan_in is
    right for grouped convolutions, its fan_out (``out * k``) counts every output channel,
    though each input channel reaches only ``out/groups`` of them. Here fan_out is
    ``out/groups * k``. Conv1D (``(in, out)``) and ConvTranspose (``(in, out/groups, *k)``)
    are read in their forward direction.
    """
    w = module._parameters.get("weight")
    if not isinstance(w, torch.Tensor) or w.dim() < 2:
        return None
    kind = module_kind(module)
    if is_transposed_linear(module):
        return int(w.shape[0]), int(w.shape[1])
    receptive = int(torch.Size(w.shape[2:]).numel()) if w.dim() > 2 else 1
    groups = int(getattr(module, "groups", 1) or 1)
    if kind == "conv_transpose":
        return int(w.shape[0]) // groups * receptive, int(w.shape[1]) * receptive
    return int(w.shape[1]) * receptive, int(w.shape[0]) // groups * receptive


# --- calling a model ---------------------------------------------------------------------------


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a (nested) tuple/list, a dict or a model output object (``logits`` first)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict) or hasattr(value, "keys"):
        try:
            keys = list(value.keys())
        except Exception:  # noqa: BLE001 - a mapping-like object that is not one
            keys = []
        if "logits" in keys:
            return first_tensor(value["logits"])
        for k in keys:
            t = first_tensor(value[k])
            if t is not None:
                return t
        return None
    if isinstance(value, (tuple, list)):
        for v in value:
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def call_model(model: nn.Module, example_input: Any) -> Any:
    """``model(*example_input)`` for a tuple/list, ``model(**example_input)`` for a dict, else ``model(x)``."""
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    if isinstance(example_input, dict):
        return model(**example_input)
    return model(example_input)


class eval_mode:
    """Context: the model in eval mode (no dropout draws, no running-stat updates), restored after;
    the global RNG state is saved and restored around it, whatever the model's forward does."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.flags: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.rng = torch.random.fork_rng(devices=[])
        self.rng.__enter__()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.rng.__exit__(*exc)
        for m, flag in self.flags:
            m.training = flag
