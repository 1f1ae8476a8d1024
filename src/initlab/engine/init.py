"""Building members: the template model and each member's initial parameters.

A member's parameters are written by ``initlab.schemes.fill.fill_model_``, each from its own
generator ``initlab.seeding.param_generator(seed, dotted_name)`` (the key ``initlab.initialize``
uses too), so adding a layer changes no other layer's weights, two schemes at the same seed draw
from the same streams (common random numbers), and a member ``("he_normal", s)`` gets the same
bits as ``initlab.initialize(model, "he_normal", seed=s)`` or an ``"auto"`` plan entry that
resolves to the same scheme and parameters:

* a parameter with ``dim >= 2`` (a weight in torch's ``(out, in, *kernel)`` layout): the member's
  scheme;
* a 1-D parameter whose last name component contains ``bias``: ``TrainConfig.bias_init``;
* any other parameter (normalization weights, scalars): ones.

Buffers (running statistics) keep the values the model factory gives them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from initlab.engine.config import Member
from initlab.errors import UserError
from initlab.schemes import Scheme
from initlab.schemes.fill import Sampler, fill_model_


@contextlib.contextmanager
def isolated_global_rng(device: torch.device | None = None) -> Iterator[None]:
    """Run a block that may draw from torch's global RNG, then put that RNG back as it was.

    Model constructors (``nn.Linear`` draws its default weights) and stochastic modules
    (``nn.Dropout``) use the global RNG; the engine overwrites or reseeds them, and this keeps the
    caller's global RNG state untouched.
    """
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def build_template(model_factory: Callable[[], nn.Module]) -> nn.Module:
    """One model from the factory, built without disturbing the global RNG."""
    with isolated_global_rng():
        model = model_factory()
    if not isinstance(model, nn.Module):
        raise UserError(f"model_factory must return a torch.nn.Module; got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise UserError("the model from model_factory has no parameters to train")
    return model


class _Ones:
    """Ones of any shape, scalars included (the ``ones`` scheme refuses 0-D tensors)."""

    def sample(self, shape: tuple[int, ...], *, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        return torch.ones(shape, dtype=dtype)


_ONES = _Ones()


def is_bias_name(name: str) -> bool:
    return "bias" in name.rsplit(".", 1)[-1]


def initialize_member(
    model: nn.Module, scheme: Scheme | Callable[[nn.Module, int], None], seed: int, *, bias_init: Scheme
) -> nn.Module:
    """Fill ``model``'s parameters in place for one member (rules in the module docstring).

    A callable ``scheme`` is called as ``scheme(model, seed)`` instead and owns every parameter.
    """
    if not isinstance(scheme, Scheme):
        with isolated_global_rng():
            scheme(model, seed)
        return model
    samplers: dict[str, Sampler] = {}
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            if not scheme.fits(param.shape):
                raise UserError(
                    f"scheme {scheme.name!r} cannot fill parameter {name!r} of shape {tuple(param.shape)}; "
                    f"it needs a {scheme.definition.dims_text()} tensor"
                )
            samplers[name] = scheme
        elif param.dim() == 1 and is_bias_name(name):
            samplers[name] = bias_init
        else:
            samplers[name] = _ONES
    return fill_model_(model, samplers, seed=seed)


def initial_state(
    model_factory: Callable[[], nn.Module],
    members: Sequence[Member],
    *,
    bias_init: Scheme,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stacked parameters and buffers ``{name: (E, *shape)}`` of freshly initialized members.

    Parameters come out in ``named_parameters()`` order, on ``device``; each member's model is
    built by the factory, initialized, read and dropped.
    """
    params: dict[str, list[torch.Tensor]] = {}
    buffers: dict[str, list[torch.Tensor]] = {}
    for member in members:
        model = build_template(model_factory)
        if dtype is not None:
            model = model.to(dtype)
        initialize_member(model, member.scheme, member.seed, bias_init=bias_init)
        for name, p in model.named_parameters():
            params.setdefault(name, []).append(p.detach().to(device))
        for name, b in model.named_buffers():
            buffers.setdefault(name, []).append(b.detach().to(device))
    return ({n: torch.stack(v) for n, v in params.items()}, {n: torch.stack(v) for n, v in buffers.items()})
