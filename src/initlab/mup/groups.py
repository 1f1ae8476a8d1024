"""``initlab.mup.param_groups``: torch optimizer parameter groups with μP's per-layer learning rates."""

from __future__ import annotations

from typing import Any

from torch import nn

from initlab.engine.config import OPTIMIZERS
from initlab.errors import UserError
from initlab.mup.table import MupRecord


def param_groups(model: nn.Module, plan: Any, lr: float, optimizer: str = "adam") -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim.Adam``/``AdamW`` (``optimizer="adam"``) or ``SGD``
    (``"sgd"``): one group per distinct learning rate ``lr x`` the plan's μP multiplier.

    Tensor Programs V, Table 3 (``initlab.mup.table``): under Adam the hidden and readout matrices
    get ``lr / ñ_fan_in`` and input-like tensors ``lr``; under SGD input-like tensors and biases
    get ``lr x ñ_fan_out``, hidden ``lr x ñ_out/ñ_in``, the readout ``lr / ñ_fan_in``. Each group
    also carries ``names`` (the parameters' dotted names) and ``mup_class``.

    >>> plan = initlab.initialize(model, "mup", base_width=64)         # doctest: +SKIP
    >>> opt = torch.optim.Adam(initlab.mup.param_groups(model, plan, lr=1e-3))  # doctest: +SKIP
    """
    if optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {', '.join(sorted(OPTIMIZERS))}; got {optimizer!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise UserError(f"lr must be a number > 0; got {lr!r}")
    params = dict(model.named_parameters())
    entries = {e.param: e for e in getattr(plan, "entries", ())}
    if not entries or all(e.mup is None for e in entries.values()):
        raise UserError(
            "param_groups needs a μP plan: plan = initlab.initialize(model, 'mup', base_width=...) (or 'auto+mup')"
        )
    missing = [n for n in params if n not in entries or entries[n].mup is None]
    if missing:
        raise UserError(
            f"the plan has no μP record for {len(missing)} parameter(s) of the model "
            f"({', '.join(missing[:5])}); is it the plan of this model?"
        )
    groups: dict[tuple[float, str], dict[str, Any]] = {}
    for name, p in params.items():
        record = MupRecord.from_dict(entries[name].mup)
        mult = record.lr_mult(optimizer)
        group = groups.setdefault(
            (mult, record.klass),
            {"params": [], "names": [], "lr": lr * mult, "mup_class": record.klass, "lr_mult": mult},
        )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())
