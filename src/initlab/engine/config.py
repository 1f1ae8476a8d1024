"""What to train and how: ``TrainConfig`` (hyperparameters) and ``Member`` (one scheme and seed).

Both are validated when built: a bad value raises ``initlab.errors.UserError`` (a ``ValueError``)
naming the field, the value received and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Union

import torch

from initlab.engine.losses import LOSSES  # ("cross_entropy", "mse")
from initlab.errors import UserError
from initlab.schemes import Scheme, get_scheme

OPTIMIZERS = ("sgd", "adam")

InitFn = Callable[[torch.nn.Module, int], None]
"""A custom member initializer: ``init(model, seed)`` fills ``model``'s parameters in place."""

SchemeLike = Union[str, Scheme, dict]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a positive integer; got {value!r}")
    return value


def _real(name: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False,
          high_open: bool = True, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number {allowed}; got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise UserError(f"{name} must be {allowed}; got {value!r}")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by every member of an ensemble (units in the comments).

    The optimizers follow ``torch.optim.SGD`` and ``torch.optim.Adam`` exactly (L2
    ``weight_decay`` added to the gradient, as torch does; dampening 0; no AMSGrad). The loss is
    the mean cross-entropy over a batch, ``torch.nn.functional.cross_entropy`` (over every token for
    sequence targets), or ``loss="mse"``, the mean squared error (``initlab.engine.losses``).
    """

    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # samples per step; the last batch of an epoch may be smaller
    optimizer: str = "sgd"  # "sgd" or "adam"
    lr: float = 0.01  # learning rate, > 0
    momentum: float = 0.9  # SGD only, in [0, 1)
    nesterov: bool = False  # SGD only; needs momentum > 0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam only, each in [0, 1)
    eps: float = 1e-8  # Adam only, > 0
    weight_decay: float = 0.0  # L2 coefficient, >= 0
    bias_init: SchemeLike = "zeros"  # scheme for 1-D bias parameters; stored as a ``Scheme``
    target: float | None = None  # test accuracy in (0, 1] for "steps to target"; None: not tracked
    loss: str = "cross_entropy"
    eval_batch_size: int = 1024  # test samples per forward pass when evaluating

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise UserError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        set_("lr", _real("lr", self.lr, low=0.0, low_open=True, allowed="> 0"))
        set_("momentum", _real("momentum", self.momentum, low=0.0, high=1.0, allowed="in [0, 1)"))
        if not isinstance(self.nesterov, bool):
            raise UserError(f"nesterov must be True or False; got {self.nesterov!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise UserError(
                f"nesterov=True needs optimizer 'sgd' with momentum > 0; got optimizer={self.optimizer!r}, "
                f"momentum={self.momentum!r}"
            )
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise UserError(f"betas must be a pair (beta1, beta2), each in [0, 1); got {betas!r}")
        set_("betas", tuple(
            _real(f"betas[{i}]", b, low=0.0, high=1.0, allowed="in [0, 1)") for i, b in enumerate(betas)
        ))
        set_("eps", _real("eps", self.eps, low=0.0, low_open=True, allowed="> 0"))
        set_("weight_decay", _real("weight_decay", self.weight_decay, low=0.0, allowed=">= 0"))
        try:
            bias = get_scheme(self.bias_init)
        except ValueError as exc:
            raise UserError(f"bias_init: {exc}") from None
        if not bias.fits((4,)):
            raise UserError(
                f"bias_init {bias.name!r} cannot fill a 1-D bias; use a scheme that fits any shape "
                f"(zeros, constant, normal, uniform, ...)"
            )
        set_("bias_init", bias)
        if self.target is not None:
            set_("target", _real("target", self.target, low=0.0, high=1.0, low_open=True, high_open=False,
                                 allowed="in (0, 1] (a test accuracy) or None"))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON data (``bias_init`` as a scheme config); ``from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Scheme):
                value = value.to_config()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise UserError(f"unknown TrainConfig field {extra[0]!r}; allowed: {', '.join(sorted(known))}")
        data = dict(data)
        if isinstance(data.get("betas"), list):
            data["betas"] = tuple(data["betas"])
        return cls(**data)


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: an initialization and a seed.

    ``scheme`` is a scheme (name, alias, ``Scheme`` or config dict), applied by
    ``initlab.engine.initialize_member``, or a callable ``init(model, seed)`` that fills the
    parameters itself (for instance a policy). ``seed`` fixes the member's weights (through the
    scheme) and its data order and every other random choice, identically for every scheme, so
    members that share a seed are compared on equal terms. ``name`` labels the member in results;
    by default the scheme name or the callable's name.
    """

    scheme: SchemeLike | InitFn
    seed: int
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UserError(f"Member seed must be an integer; got {self.seed!r}")
        if isinstance(self.scheme, (str, dict, Scheme)):
            object.__setattr__(self, "scheme", get_scheme(self.scheme))
        elif not callable(self.scheme):
            raise UserError(
                f"Member scheme must be a scheme name, Scheme, scheme config or a callable init(model, seed); "
                f"got {self.scheme!r}"
            )
        if self.name is not None and not isinstance(self.name, str):
            raise UserError(f"Member name must be a string or None; got {self.name!r}")

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        if isinstance(self.scheme, Scheme):
            return self.scheme.name
        return getattr(self.scheme, "__qualname__", None) or getattr(self.scheme, "__name__", None) or repr(self.scheme)

    def to_dict(self) -> dict[str, Any]:
        """Plain data identifying the member (a callable init is named, not serialized)."""
        init = self.scheme.to_config() if isinstance(self.scheme, Scheme) else {"callable": self.label}
        return {"label": self.label, "seed": self.seed, "scheme": init}
