"""What to train and how: ``TrainConfig`` (hyperparameters) and ``Member`` (one scheme and seed).

Both are validated when built: a bad value raises ``initlab.errors.UserError`` (a ``ValueError``)
naming the field, the value received and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from initlab import checks
from initlab.engine.losses import LOSSES  # ("cross_entropy", "mse")
from initlab.errors import UserError
from initlab.schemes import Scheme, get_scheme

OPTIMIZERS = ("sgd", "adam")

InitFn = Callable[[torch.nn.Module, int], None]
"""A custom member initializer: ``init(model, seed)`` fills ``model``'s parameters in place."""

SchemeLike = str | Scheme | dict


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
        for name in ("epochs", "batch_size", "eval_batch_size"):
            checks.positive_int(name, getattr(self, name))
        checks.choice("optimizer", self.optimizer, OPTIMIZERS)
        checks.choice("loss", self.loss, LOSSES)
        set_("lr", checks.positive("lr", self.lr))
        set_("momentum", checks.real("momentum", self.momentum, low=0.0, high=1.0, high_open=True))
        if not isinstance(self.nesterov, bool):
            raise checks.fail("nesterov", self.nesterov, "True or False")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise UserError(
                f"nesterov=True needs optimizer 'sgd' with momentum > 0; got optimizer={self.optimizer!r}, "
                f"momentum={self.momentum!r}"
            )
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise checks.fail("betas", betas, "a pair (beta1, beta2), each in [0, 1)")
        set_(
            "betas",
            tuple(checks.real(f"betas[{i}]", b, low=0.0, high=1.0, high_open=True) for i, b in enumerate(betas)),
        )
        set_("eps", checks.positive("eps", self.eps))
        set_("weight_decay", checks.real("weight_decay", self.weight_decay, low=0.0))
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
            set_("target", checks.real("target", self.target, low=0.0, high=1.0, low_open=True))

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
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
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
    """One member of an ensemble: an initialization, a seed and, optionally, its own rates.

    ``scheme`` is a scheme (name, alias, ``Scheme`` or config dict), applied by
    ``initlab.engine.initialize_member``, or a callable ``init(model, seed)`` that fills the
    parameters itself (for instance a policy). ``seed`` fixes the member's weights (through the
    scheme) and its data order and every other random choice, identically for every scheme, so
    members that share a seed are compared on equal terms. ``name`` labels the member in results;
    by default the scheme name or the callable's name.

    ``lr`` and ``weight_decay`` override ``TrainConfig.lr`` and ``TrainConfig.weight_decay`` for
    this member only (None: the config's value), so one ensemble can train a learning-rate grid:
    ``[Member("he_normal", s, lr=lr) for lr in (0.01, 0.1) for s in range(5)]``. A member in a
    mixed-rate ensemble trains exactly as it would alone (see ``initlab.engine.optim``).
    """

    scheme: SchemeLike | InitFn
    seed: int
    name: str | None = None
    lr: float | None = None  # learning rate, > 0; None: TrainConfig.lr
    weight_decay: float | None = None  # L2 coefficient, >= 0; None: TrainConfig.weight_decay

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
        if self.lr is not None:
            object.__setattr__(self, "lr", checks.positive("Member lr", self.lr))
        if self.weight_decay is not None:
            object.__setattr__(self, "weight_decay", checks.real("Member weight_decay", self.weight_decay, low=0.0))

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
        out = {"label": self.label, "seed": self.seed, "scheme": init}
        for name in ("lr", "weight_decay"):  # only when set: older checkpoints stay comparable
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out
