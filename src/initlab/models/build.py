"""``build``: a model by name or ``"module:function"``, with weights that depend on ``seed`` only.

``nn.Linear`` and ``nn.ConvNd`` draw their initial weights from the global RNG in their
constructors. ``build`` constructs the model inside a fork of the CPU RNG (the global state is
restored afterwards) and then overwrites every parameter of the layers it knows with PyTorch's
own defaults drawn from a generator per dotted parameter name (``default_init_``): the global
RNG is neither read for the result nor changed, the same seed gives the same bits, and adding a
layer changes no other layer's weights.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from initlab import checks
from initlab.errors import UserError, lookup
from initlab.layers import is_norm
from initlab.loader import call_factory, load_callable
from initlab.models.nets import _int, _shape, cnn, mlp, rescnn, resmlp
from initlab.models.transformer import transformer
from initlab.schemes import Scheme, compute_fans, get_scheme
from initlab.schemes.fill import fill_model_
from initlab.seeding import derive_seed

# name -> (builder, defaults for width/depth, extra keyword arguments it takes)
_ARCHS: dict[str, tuple[Callable[..., nn.Module], dict[str, int], tuple[str, ...]]] = {
    "mlp": (mlp, {"width": 256, "depth": 2}, ("bias",)),
    "cnn": (cnn, {"width": 32, "depth": 2}, ("bias",)),
    "resmlp": (resmlp, {"width": 256, "depth": 2}, ("norm", "bias")),
    "rescnn": (rescnn, {"width": 32, "depth": 2}, ("norm", "bias")),
    "transformer": (transformer, {"width": 128, "depth": 2}, ("heads",)),
}
FACTORY_ARGS = ("input_shape", "num_classes", "width", "depth", "activation")


def architectures() -> list[str]:
    """The built-in model names ``build`` accepts (besides ``"module:function"``)."""
    return sorted(_ARCHS)


def default_init_(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Write PyTorch's default initialization into ``model`` from named generators; returns it.

    For every ``nn.Linear`` and ``nn.ConvNd`` (transposed included) at dotted name ``m``:
    ``m.weight`` ← ``torch_default`` (``U(±1/sqrt(fan_in))``, kaiming_uniform with a = √5) and
    ``m.bias`` ← ``U(±1/sqrt(fan_in))`` with the weight's fan-in, each drawn from
    ``param_generator(seed, "m.weight")`` / ``(seed, "m.bias")`` by ``fill_model_``. Normalization layers
    (BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm; ``initlab.layers.is_norm``): weight ← 1, bias ← 0,
    running statistics
    reset. Parameters of other module types are left as they are.
    Source: ``torch/nn/modules/linear.py`` and ``conv.py``, ``reset_parameters``.
    """
    samplers: dict[str, Scheme] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            weight, bias = module.weight, module.bias
            if weight is None or weight.numel() == 0:
                continue
            samplers[prefix + "weight"] = get_scheme("torch_default")
            if bias is not None and bias.numel():
                samplers[prefix + "bias"] = get_scheme("torch_default", fan_in=compute_fans(tuple(weight.shape))[0])
        elif is_norm(module):
            with torch.no_grad():
                if getattr(module, "weight", None) is not None:
                    module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
                module.reset_running_stats()
    return fill_model_(model, samplers, seed=seed)


def _call_factory(
    factory: Callable[..., Any], label: str, available: dict[str, Any], extra: dict[str, Any]
) -> nn.Module:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is None:
        kwargs = {**available, **extra}
    else:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in available.items() if takes_any or k in params}
        refused = sorted(k for k in extra if not takes_any and k not in params)
        if refused:
            raise UserError(
                f"model factory {label} takes no parameter {refused[0]!r}; "
                f"its parameters: {', '.join(params) or 'none'}"
            )
        kwargs.update(extra)
        missing = [
            n
            for n, p in params.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            and n not in kwargs
        ]
        if missing:
            raise UserError(
                f"model factory {label} needs parameter {missing[0]!r}, which build cannot supply; "
                f"build passes those it accepts among {', '.join(FACTORY_ARGS)} and extra keyword arguments"
            )
    model = call_factory(factory, label, **kwargs)
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {label} returned a {type(model).__name__}, not an nn.Module")
    return model


def build(
    spec: str | Callable[..., nn.Module],
    *,
    input_shape: Sequence[int] | int,
    num_classes: int,
    width: int | None = None,
    depth: int | None = None,
    activation: str = "relu",
    seed: int = 0,
    materialize: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build a model for inputs of ``input_shape`` and ``num_classes`` outputs, weights from ``seed``.

    ``spec``: ``"mlp"`` (width 256, depth 2 by default), ``"cnn"`` (32, 2), ``"resmlp"``
    (256, 2), ``"rescnn"`` (32, 2), or ``"module:function"`` / a callable: a user factory,
    called with the keyword arguments it accepts among ``input_shape``, ``num_classes``,
    ``width``, ``depth`` (those two only when given) and ``activation``, plus ``kwargs``.
    Built-in extras: ``bias`` (all), ``norm`` (resmlp, rescnn).

    The model is constructed inside ``torch.random.fork_rng`` with the forked CPU RNG seeded
    from ``derive_seed(seed, "construct")`` (so even parameters ``default_init_`` does not know
    are reproducible), then ``default_init_(model, seed=seed)`` writes every Linear, Conv and
    norm parameter. The caller's global RNG state is the same before and after.
    ``materialize=False`` skips that step (for a shapes-only model built under
    ``torch.device("meta")``, as the memory estimate does).

    >>> model = build("mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    >>> [tuple(p.shape) for p in model.parameters()][:2]
    [(256, 784), (256,)]
    """
    checks.integer("seed", seed)
    shape = _shape(input_shape)
    num_classes = _int("num_classes", num_classes, 1)
    if width is not None:
        width = _int("width", width, 1)
    if depth is not None:
        depth = _int("depth", depth, 0)
    if callable(spec) and not isinstance(spec, str):
        factory, label, builtin = spec, repr(getattr(spec, "__qualname__", spec)), None
    elif isinstance(spec, str) and ":" in spec:
        factory, label, builtin = load_callable(spec), repr(spec), None
    elif isinstance(spec, str):
        key = lookup("model", spec, list(_ARCHS) + ["module:function"])
        factory, label, builtin = None, repr(key), key
    else:
        raise UserError(f"model spec must be a name or 'module:function'; got {spec!r}")

    # nn.Linear/nn.ConvNd constructors draw from the global RNG: let them draw from a fork
    # seeded from `seed`, so the caller's RNG is untouched and the result depends on seed only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "construct"))
        if builtin is not None:
            make, defaults, extras = _ARCHS[builtin]
            bad = sorted(set(kwargs) - set(extras))
            if bad:
                raise UserError(f"model {builtin!r} takes no parameter {bad[0]!r}; allowed extras: {', '.join(extras)}")
            w = defaults["width"] if width is None else width
            d = defaults["depth"] if depth is None else depth
            if builtin in ("mlp", "resmlp"):
                model = make(math.prod(shape), num_classes, w, d, activation, **kwargs)
            else:
                model = make(shape, num_classes, w, d, activation, **kwargs)
        else:
            available: dict[str, Any] = {"input_shape": shape, "num_classes": num_classes, "activation": activation}
            if width is not None:
                available["width"] = width
            if depth is not None:
                available["depth"] = depth
            model = _call_factory(factory, label, available, kwargs)
    return default_init_(model, seed=seed) if materialize else model
