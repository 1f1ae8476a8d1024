"""The convolutional fast path: stacked members as the groups of one grouped convolution.

``vmap`` runs a stack of CNN members correctly, and its batching rule for a convolution is a
grouped convolution too, but between layers it moves the member axis back and forth and hands
pooling and normalization non-contiguous tensors, whose CPU kernels then take slow paths
(measured: max pooling was a third of a vmap CNN step). This backend keeps a convolutional
activation in one layout from layer to layer: member ``e``'s channel ``c`` is channel
``e * C + c`` of an ordinary batch ``(B, E*C, *spatial)`` (sample ``b`` of that batch is each
member's own ``b``-th sample). In that layout every per-channel operation of one member is the
same operation of the whole stack:

* ``Conv{1,2}d`` with weights ``W (E, O, C, *k)``: ``conv(h, W.reshape(E*O, C, *k), groups=E)``
  (group ``e`` sees only member ``e``'s channels);
* pooling and element-wise activations: as they are (per channel);
* ``BatchNorm`` over ``E*C`` channels: per member and channel, over the batch and positions,
  which is exactly each member's own batch statistics; running statistics are updated in place
  in the stacked buffers;
* ``GroupNorm(G, C)``: ``GroupNorm(E*G, E*C)``, per sample, per member;

and the dense head goes back to the member-first layout ``(E, B, F)`` for batched products
(``baddbmm``). The forward pass is written once; autograd differentiates it (one graph for the
whole stack: the loss summed over members gives each member exactly its own gradient).

A model qualifies when it is made of (nested) plain ``nn.Sequential``, initlab's
``ResidualBlock`` (``x + f(x)``), ``Conv1d``/``Conv2d`` (``groups=1``, zero padding),
``Linear``, ``BatchNorm1d``/``2d`` (affine, running statistics with a momentum), ``GroupNorm``,
max/average pooling (adaptive too), ``Flatten``, ``Unflatten``, element-wise activations,
``Identity`` and ``Dropout(p=0)``. ``auto`` takes it for such a model when it has a convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from initlab.engine.mlp import _ELEMENTWISE, _OWN_BACKWARD, _plain

_POOLS = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}


class NotGrouped(Exception):
    """The model has a module this backend does not run; the message names it."""


@dataclass(frozen=True)
class Op:
    kind: str  # conv, linear, batchnorm, groupnorm, channelwise, elementwise, flatten, unflatten, residual
    name: str
    module: nn.Module | None = None
    body: tuple[Op, ...] = ()


def _residual_class() -> type | None:
    try:
        from initlab.models.nets import ResidualBlock
    except ImportError:  # pragma: no cover  (the models package is part of initlab)
        return None
    return ResidualBlock


def _parse(module: nn.Module, prefix: str) -> list[Op]:
    residual = _residual_class()
    if _plain(module, nn.Sequential):
        return [op for name, child in module.named_children() for op in _parse(child, f"{prefix}{name}.")]
    name = prefix[:-1]
    if residual is not None and _plain(module, residual):
        body = [op for child_name, child in module.named_children() for op in _parse(child, f"{prefix}{child_name}.")]
        return [Op("residual", name, body=tuple(body))]
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
        raise NotGrouped(f"module {name!r} has hooks")
    conv = next((cls for cls in _CONV if _plain(module, cls)), None)
    if conv is not None:
        if module.groups != 1 or module.padding_mode != "zeros":
            raise NotGrouped(
                f"{type(module).__name__} {name!r} has groups={module.groups}, "
                f"padding_mode={module.padding_mode!r} (needs 1, 'zeros')"
            )
        return [Op("conv", name, module)]
    if _plain(module, nn.Linear):
        return [Op("linear", name, module)]
    if _plain(module, nn.BatchNorm1d) or _plain(module, nn.BatchNorm2d):
        if not (module.affine and module.track_running_stats and module.momentum is not None):
            raise NotGrouped(f"BatchNorm {name!r} needs affine=True, running statistics and a momentum")
        return [Op("batchnorm", name, module)]
    if _plain(module, nn.GroupNorm):
        if not module.affine:
            raise NotGrouped(f"GroupNorm {name!r} needs affine=True")
        return [Op("groupnorm", name, module)]
    if any(_plain(module, cls) for cls in _POOLS):
        return [Op("channelwise", name, module)]
    if any(_plain(module, cls) for cls in (*_OWN_BACKWARD, *_ELEMENTWISE)):
        return [Op("elementwise", name, module)]
    if _plain(module, nn.Flatten):
        if not (module.start_dim == 1 and module.end_dim == -1):
            raise NotGrouped(f"Flatten {name!r} flattens dims other than 1..-1")
        return [Op("flatten", name, module)]
    if _plain(module, nn.Unflatten):
        if module.dim != 1:
            raise NotGrouped(f"Unflatten {name!r} unflattens dim {module.dim} (needs 1)")
        return [Op("unflatten", name, module)]
    if _plain(module, nn.Identity) or (_plain(module, nn.Dropout) and module.p == 0):
        return []
    raise NotGrouped(f"module {name!r} ({type(module).__name__}) is not one this backend runs")


def parse_grouped(model: nn.Module) -> list[Op]:
    """The operations of ``model`` (module docstring); raises ``NotGrouped`` naming a misfit."""
    if not _plain(model, nn.Sequential):
        raise NotGrouped(f"the model is a {type(model).__name__}, not an nn.Sequential (with its forward)")
    return _parse(model, "")


def has_conv(ops: list[Op]) -> bool:
    return any(op.kind == "conv" or (op.kind == "residual" and has_conv(list(op.body))) for op in ops)


class _Stack:
    """An activation of every member: member-first ``(E, B, *sample)`` or grouped ``(B, E*C, *spatial)``."""

    def __init__(self, tensor: torch.Tensor, members: int, sample: tuple[int, ...], grouped: bool) -> None:
        self.t, self.members, self.sample, self.grouped = tensor, members, sample, grouped

    def as_grouped(self) -> torch.Tensor:
        if not self.grouped:
            e, b = self.t.shape[:2]
            t = self.t.transpose(0, 1).reshape(b, e * self.sample[0], *self.sample[1:])
            # Channels-last images: torch's CPU max pooling and convolutions run several times
            # faster on them than on NCHW (measured: 2x2 max pooling of (32, 320, 16, 16), 3x).
            self.t = t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
            self.grouped = True
        return self.t

    def as_members(self) -> torch.Tensor:
        if self.grouped:
            b = self.t.shape[0]
            self.t = self.t.view(b, self.members, *self.sample).transpose(0, 1)
            self.grouped = False
        return self.t

    def set_grouped(self, tensor: torch.Tensor) -> None:
        self.t, self.grouped = tensor, True
        self.sample = (tensor.shape[1] // self.members, *tensor.shape[2:])

    def set_members(self, tensor: torch.Tensor) -> None:
        self.t, self.grouped = tensor, False
        self.sample = tuple(tensor.shape[2:])


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)


def _run(
    ops: tuple[Op, ...] | list[Op],
    h: _Stack,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    training: bool,
) -> _Stack:
    members = h.members
    for op in ops:
        m = op.module
        if op.kind == "conv":
            w = params[f"{op.name}.weight"]
            bias = params.get(f"{op.name}.bias")
            out = _CONV[type(m)](
                h.as_grouped(),
                w.reshape(members * w.shape[1], *w.shape[2:]),
                None if bias is None else _flat(bias),
                m.stride,
                m.padding,
                m.dilation,
                members,
            )
            h.set_grouped(out)
        elif op.kind == "linear":
            x = h.as_members()
            e, b = x.shape[:2]
            x3 = x.reshape(e, -1, x.shape[-1])
            w = params[f"{op.name}.weight"].transpose(1, 2)
            bias = params.get(f"{op.name}.bias")
            z = torch.baddbmm(bias.unsqueeze(1), x3, w) if bias is not None else torch.bmm(x3, w)
            h.set_members(z.view(e, b, *x.shape[2:-1], z.shape[-1]))
        elif op.kind == "batchnorm":
            nbt = buffers[f"{op.name}.num_batches_tracked"]
            if training:
                nbt.add_(1)
            out = F.batch_norm(
                h.as_grouped(),
                _flat(buffers[f"{op.name}.running_mean"]),
                _flat(buffers[f"{op.name}.running_var"]),
                _flat(params[f"{op.name}.weight"]),
                _flat(params[f"{op.name}.bias"]),
                training,
                m.momentum,
                m.eps,
            )
            h.set_grouped(out)
        elif op.kind == "groupnorm":
            out = F.group_norm(
                h.as_grouped(),
                members * m.num_groups,
                _flat(params[f"{op.name}.weight"]),
                _flat(params[f"{op.name}.bias"]),
                m.eps,
            )
            h.set_grouped(out)
        elif op.kind == "channelwise":
            h.set_grouped(m(h.as_grouped()))
        elif op.kind == "elementwise":  # never in place: h.t may be the caller's data or a skip path
            h.t = m(h.t.clone() if getattr(m, "inplace", False) else h.t)
        elif op.kind == "flatten":
            x = h.as_members()
            h.set_members(x.reshape(x.shape[0], x.shape[1], -1))
        elif op.kind == "unflatten":
            x = h.as_members()
            h.set_members(x.reshape(x.shape[0], x.shape[1], *m.unflattened_size))
        elif op.kind == "residual":
            skip = _Stack(h.t, members, h.sample, h.grouped)
            branch = _run(op.body, _Stack(h.t, members, h.sample, h.grouped), params, buffers, training)
            if skip.grouped:
                h = _Stack(skip.t + branch.as_grouped(), members, skip.sample, True)
            else:
                h = _Stack(skip.t + branch.as_members(), members, skip.sample, False)
    return h


class GroupedBackend:
    """Trains stacked members of a convolutional model in the grouped layout (module docstring)."""

    name = "grouped"

    def __init__(
        self, ops: list[Op], x_train: torch.Tensor, y_train: torch.Tensor, param_names: list[str], trainable: list[str]
    ) -> None:
        self.ops = ops
        self.x = x_train
        self.y = y_train
        self.param_names = param_names
        self.trainable = trainable

    def _logits(self, params, buffers, x: torch.Tensor, training: bool) -> torch.Tensor:
        members = x.shape[0]
        out = _run(self.ops, _Stack(x, members, tuple(x.shape[2:]), False), params, buffers, training).as_members()
        return out.reshape(members, x.shape[1], -1)

    def loss_and_grads(self, params, buffers, idx, *, epoch: int, step: int):
        members, batch = idx.shape
        flat = idx.reshape(-1)
        x = self.x.index_select(0, flat).view(members, batch, *self.x.shape[1:])
        y = self.y.index_select(0, flat)
        leaves = {n: params[n].detach().requires_grad_(True) for n in self.trainable}
        inputs = {**params, **leaves}
        with torch.enable_grad():
            logits = self._logits(inputs, buffers, x, training=True)
            classes = logits.shape[-1]
            per_sample = F.cross_entropy(logits.reshape(members * batch, classes), y, reduction="none")
            loss = per_sample.view(members, batch).mean(dim=1)
            grads = torch.autograd.grad(loss.sum(), [leaves[n] for n in self.trainable])
        correct = (logits.detach().argmax(dim=-1) == y.view(members, batch)).sum(dim=1)
        # The stacked optimizer (torch's fused SGD kernel) needs dense gradients; autograd may hand
        # back a transposed view (the Linear weights enter as W^T).
        return [g.contiguous() for g in grads], loss.detach(), correct

    @torch.no_grad()
    def logits(self, params, buffers, x):
        members = params[self.param_names[0]].shape[0]
        return self._logits(params, buffers, x.unsqueeze(0).expand(members, *x.shape), training=False)


__all__ = ["GroupedBackend", "NotGrouped", "has_conv", "parse_grouped"]
