"""Which backend trains an ensemble: the ``Backend`` protocol, the choice and its reason.

``auto`` takes the first backend that runs the model, fastest first: ``mlp`` (batched matmuls,
``initlab.engine.mlp``), ``grouped`` (members as the groups of grouped convolutions,
``initlab.engine.grouped``), ``vmap`` (``torch.func``) and ``loop`` (one member at a time,
``initlab.engine.functional``). The reason it gives names why the faster ones could not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from initlab.engine.config import Member
from initlab.engine.functional import LoopBackend, VmapBackend
from initlab.engine.grouped import GroupedBackend, NotGrouped, has_conv, parse_grouped
from initlab.engine.init import isolated_global_rng
from initlab.engine.mlp import MLPBackend, NotAnMLP, parse_mlp
from initlab.engine.train_data import TrainData
from initlab.errors import UserError

BACKENDS = ("auto", "mlp", "grouped", "vmap", "loop")


class Backend(Protocol):
    name: str

    def loss_and_grads(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        idx: torch.Tensor,
        *,
        epoch: int,
        step: int,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Gradients (trainable parameters, stacked), loss ``(E,)`` and correct count ``(E,)``."""

    def logits(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``(E, b, C)`` eval-mode outputs of every member on the shared inputs ``x``."""


def choose_backend(
    requested: str,
    template: nn.Module,
    data: TrainData,
    params,
    buffers,
    trainable,
    members: Sequence[Member],
    *,
    autocast: str | None = None,
) -> tuple[Backend, str]:
    """The backend and why it was chosen (for ``auto``: why the faster ones could not run)."""
    if requested not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}; got {requested!r}")
    if requested == "mlp" and autocast is not None:
        raise UserError(
            f"backend 'mlp' computes its gradients by hand in the parameters' dtype; autocast="
            f"{autocast!r} needs 'grouped', 'vmap' or 'loop' (or 'auto')"
        )
    names = list(params)
    reasons = []
    if requested in ("auto", "mlp") and autocast is None:
        try:
            if data.loss != "mse" and data.y_train.dim() != 1:
                raise NotAnMLP("per-position targets need the general backends")
            ops = parse_mlp(template, tuple(data.x_train.shape[1:]))
        except NotAnMLP as exc:
            if requested == "mlp":
                raise UserError(f"backend 'mlp' cannot run this model: {exc}; use 'vmap' or 'loop'") from None
            reasons.append(f"not a plain MLP ({exc})")
        else:
            why = "requested" if requested == "mlp" else "a plain MLP: batched matmuls"
            return MLPBackend(ops, data.x_train, data.y_train, names, loss=data.loss), why
    if requested in ("auto", "grouped"):
        try:
            if data.loss != "cross_entropy" or data.y_train.dim() != 1:
                raise NotGrouped("the grouped path trains classifiers (one class index per sample)")
            grouped_ops = parse_grouped(template)
            if requested == "auto" and not has_conv(grouped_ops):
                raise NotGrouped("no convolution: the vmap path is as fast")
            grouped = GroupedBackend(grouped_ops, data.x_train, data.y_train, names, trainable)
            _probe(grouped, params, buffers, data)
        except Exception as exc:  # noqa: BLE001  (what it cannot run, vmap or the loop can)
            if requested == "grouped":
                raise UserError(
                    f"backend 'grouped' cannot run this model ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                    f"use 'vmap' or 'loop'"
                ) from exc
            reasons.append(
                f"not grouped ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
            )
        else:
            return grouped, "requested" if requested == "grouped" else "convolutions: members as groups"
    args = (template, data.x_train, data.y_train, names, trainable, [m.seed for m in members], data.loss)
    if requested in ("auto", "vmap"):
        try:
            backend = VmapBackend(*args)
            _probe(backend, params, buffers, data)
        except Exception as exc:  # noqa: BLE001  (whatever vmap rejects, the loop handles)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if requested == "vmap":
                raise UserError(
                    f"backend 'vmap' cannot run this model ({type(exc).__name__}: {first}); use 'loop'"
                ) from exc
            reasons.append(f"torch.func.vmap cannot stack it ({type(exc).__name__}: {first[:160]})")
        else:
            return backend, "requested" if requested == "vmap" else "; ".join(reasons + ["vmap runs it"])
    return LoopBackend(*args), "requested" if requested == "loop" else "; ".join(reasons)


def _probe(backend: Backend, params, buffers, data: TrainData) -> None:
    """One tiny step and one evaluation on copies: raises if the backend cannot run the model."""
    params = {n: t.clone() for n, t in params.items()}
    buffers = {n: t.clone() for n, t in buffers.items()}
    members = next(iter(params.values())).shape[0]
    idx = torch.zeros((members, min(2, data.x_train.shape[0])), dtype=torch.int64, device=data.x_train.device)
    with isolated_global_rng(data.x_train.device):
        backend.loss_and_grads(params, buffers, idx, epoch=0, step=0)
        backend.logits(params, buffers, data.x_train[:2].clone())
