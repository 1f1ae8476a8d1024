"""The MLP fast path: batched matrix products over stacked weights, gradients written by hand.

A model qualifies when it is (nested) ``nn.Sequential`` of ``nn.Flatten``, ``nn.Linear`` and
element-wise activation modules. Member ``e``'s weights ``W_l[e]`` (torch's ``(out, in)``
layout, stacked to ``(E, out, in)``) see that member's own batch ``X[e]`` (its own data order):

.. math::
    Z_l = H_{l-1} W_l^\\top + b_l \\quad (\\texttt{baddbmm}),\\qquad H_l = \\phi(Z_l)

Back-propagation is written out rather than recorded by autograd, which saves the graph
bookkeeping, lets the first layer skip its (unused) input gradient and reuses buffers:

.. math::
    \\delta_L = (\\operatorname{softmax}(Z_L) - \\operatorname{onehot}(y)) / B,\\quad
    \\nabla W_l = \\delta_l^\\top H_{l-1},\\quad \\nabla b_l = \\textstyle\\sum_b \\delta_l,\\quad
    \\delta_{l-1} = (\\delta_l W_l) \\odot \\phi'(Z_{l-1})

ReLU, tanh and sigmoid use torch's own backward kernels on the saved output
(``threshold_backward``, ``tanh_backward``, ``sigmoid_backward``), so they match autograd's
values; other element-wise activations are differentiated by autograd on that one operation.
The loss is the per-member mean cross-entropy; the objective summed over members gives each
member exactly its own gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from initlab.layers import ELEMENTWISE_ACTIVATION_TYPES

# Element-wise activations. A subclass qualifies only if it keeps its base class's ``forward``.
_OWN_BACKWARD = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_ELEMENTWISE = ELEMENTWISE_ACTIVATION_TYPES


class NotAnMLP(Exception):
    """The model is not a chain the fast path can run; the message says why."""


@dataclass(frozen=True)
class LinearOp:
    weight: str
    bias: str | None
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ActivationOp:
    kind: str  # "relu", "tanh", "sigmoid" or "generic"
    module: nn.Module


def _plain(module: nn.Module, cls: type[nn.Module]) -> bool:
    """``module`` is a ``cls`` computing exactly what ``cls`` computes (``forward`` not overridden)."""
    return isinstance(module, cls) and type(module).forward is cls.forward


def _leaves(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if _plain(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out.extend(_leaves(child, f"{prefix}{name}."))
        return out
    return [(prefix[:-1], module)]


def parse_mlp(model: nn.Module, sample_shape: tuple[int, ...]) -> list[LinearOp | ActivationOp]:
    """The chain of operations of ``model`` for inputs of per-sample shape ``sample_shape``.

    Raises ``NotAnMLP`` naming the first module (or reason) that does not fit.
    """
    if not _plain(model, nn.Sequential):
        raise NotAnMLP(f"the model is a {type(model).__name__}, not an nn.Sequential (with its forward)")
    if any(not p.requires_grad for p in model.parameters()):
        raise NotAnMLP("the model has frozen parameters")
    ops: list[LinearOp | ActivationOp] = []
    flat = len(sample_shape) == 1
    features = math.prod(sample_shape)
    for name, leaf in _leaves(model):
        if leaf._forward_hooks or leaf._forward_pre_hooks or leaf._backward_hooks:
            raise NotAnMLP(f"module {name!r} has hooks")
        own = next((kind for cls, kind in _OWN_BACKWARD.items() if _plain(leaf, cls)), None)
        if _plain(leaf, nn.Flatten):
            if not (leaf.start_dim == 1 and leaf.end_dim == -1):
                raise NotAnMLP(f"module {name!r} is a Flatten over dims other than 1..-1")
            flat = True
        elif _plain(leaf, nn.Linear):
            if not flat:
                raise NotAnMLP(f"Linear {name!r} acts on the last axis of {sample_shape}-shaped samples")
            if leaf.in_features != features:
                raise NotAnMLP(f"Linear {name!r} expects {leaf.in_features} features; gets {features}")
            ops.append(
                LinearOp(
                    f"{name}.weight",
                    f"{name}.bias" if leaf.bias is not None else None,
                    leaf.in_features,
                    leaf.out_features,
                )
            )
            features = leaf.out_features
        elif own is not None:
            ops.append(ActivationOp(own, leaf))
        elif any(_plain(leaf, cls) for cls in _ELEMENTWISE):
            ops.append(ActivationOp("generic", leaf))
        elif _plain(leaf, nn.Identity) or (_plain(leaf, nn.Dropout) and leaf.p == 0):
            continue
        else:
            raise NotAnMLP(
                f"module {name!r} ({type(leaf).__name__}) is not Flatten, Linear or an element-wise activation"
            )
    if not any(isinstance(op, LinearOp) for op in ops):
        raise NotAnMLP("the model has no Linear layer")
    if not flat:
        raise NotAnMLP(f"the output is not a vector per sample for {sample_shape}-shaped inputs")
    return ops


def _activation_forward(op: ActivationOp, z: torch.Tensor, *, inplace: bool) -> torch.Tensor:
    """``phi(z)``; in place on ``z`` only when ``inplace`` (``z`` is a buffer nothing else keeps)."""
    if op.kind in ("relu", "tanh", "sigmoid"):
        if inplace:
            return {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}[op.kind](z)
        return {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[op.kind](z)
    return op.module(z.clone() if getattr(op.module, "inplace", False) else z)


def _activation_backward(op: ActivationOp, delta: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """``delta * phi'``; ``saved`` is the activation's output (own kernels) or its input (generic)."""
    if op.kind == "relu":
        return torch.ops.aten.threshold_backward(delta, saved, 0)
    if op.kind == "tanh":
        return torch.ops.aten.tanh_backward(delta, saved)
    if op.kind == "sigmoid":
        return torch.ops.aten.sigmoid_backward(delta, saved)
    with torch.enable_grad():
        z = saved.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(op.module(z.clone()), z, delta)
    return grad


class MLPBackend:
    """Trains stacked MLP members with batched matmuls and hand-written gradients."""

    name = "mlp"

    def __init__(
        self,
        ops: list[LinearOp | ActivationOp],
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        param_names: list[str],
        loss: str = "cross_entropy",
    ) -> None:
        self.ops = ops
        self.loss = loss
        self.x = x_train.reshape(x_train.shape[0], -1)
        self.y = y_train
        self.param_names = param_names
        # Index of the first op with parameters: no input gradient is needed below it.
        self.first_linear = next(i for i, op in enumerate(ops) if isinstance(op, LinearOp))
        self._grads: dict[str, torch.Tensor] | None = None
        self._gather: dict[int, torch.Tensor] = {}

    def _grad_buffers(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Gradients are written into the same buffers every step (out=): no per-step allocation.
        if self._grads is None:
            self._grads = {n: torch.empty_like(params[n]) for n in self.param_names}
        return self._grads

    def loss_and_grads(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        idx: torch.Tensor,
        *,
        epoch: int,
        step: int,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        members, batch = idx.shape
        flat_idx = idx.reshape(-1)
        xbuf = self._gather.get(batch)
        if xbuf is None:
            xbuf = self._gather[batch] = torch.empty(
                (members * batch, self.x.shape[1]), dtype=self.x.dtype, device=self.x.device
            )
        h = torch.index_select(self.x, 0, flat_idx, out=xbuf).view(members, batch, -1)
        y = self.y.index_select(0, flat_idx).view(members, batch)

        saved: list[torch.Tensor] = []  # per op: its input (Linear, generic) or output (own backward)
        fresh = True  # h is a buffer of this step that no earlier op saved: safe to overwrite
        for op in self.ops:
            if isinstance(op, LinearOp):
                saved.append(h)
                w = params[op.weight].transpose(1, 2)
                h = torch.baddbmm(params[op.bias].unsqueeze(1), h, w) if op.bias is not None else torch.bmm(h, w)
            elif op.kind == "generic":
                saved.append(h)
                h = _activation_forward(op, h, inplace=False)
            else:
                h = _activation_forward(op, h, inplace=fresh)
                saved.append(h)
            fresh = isinstance(op, LinearOp)
        logits = h
        if self.loss == "mse":
            # loss = mean over batch and outputs of (out - y)^2; d/d out = 2 (out - y) / (B k)
            diff = logits - y.reshape(members, batch, -1)
            loss = diff.pow(2).mean(dim=(1, 2))
            correct = torch.zeros(members, dtype=torch.int64, device=logits.device)
            delta = diff.mul_(2.0 / diff[0].numel())
        else:
            log_probs = torch.log_softmax(logits, dim=-1)
            target = y.unsqueeze(-1)
            loss = log_probs.gather(-1, target).squeeze(-1).mean(dim=1).neg_()
            correct = (logits.argmax(dim=-1) == y).sum(dim=1)
            # d(mean CE)/d logits = (softmax - onehot) / B, per member.
            delta = log_probs.exp_().mul_(1.0 / batch)
            delta.scatter_add_(-1, target, torch.full_like(target, -1.0 / batch, dtype=delta.dtype))
        grads = self._grad_buffers(params)
        for i in range(len(self.ops) - 1, self.first_linear - 1, -1):
            op = self.ops[i]
            if isinstance(op, LinearOp):
                h_in = saved[i]
                torch.bmm(delta.transpose(1, 2), h_in, out=grads[op.weight])
                if op.bias is not None:
                    torch.sum(delta, dim=1, out=grads[op.bias])
                if i > self.first_linear:
                    delta = torch.bmm(delta, params[op.weight])
            else:
                delta = _activation_backward(op, delta, saved[i])
        return [grads[n] for n in self.param_names], loss, correct

    @torch.no_grad()
    def logits(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``(E, b, C)`` outputs of every member on the same inputs ``x`` (eval mode)."""
        h = x.reshape(x.shape[0], -1)
        for op in self.ops:
            if isinstance(op, LinearOp):
                w = params[op.weight].transpose(1, 2)
                if h.dim() == 2:  # shared input: one (b, in) x (in, E*out) product for all members
                    members, out_f, in_f = params[op.weight].shape
                    z = (h @ params[op.weight].reshape(members * out_f, in_f).t()).view(h.shape[0], members, out_f)
                    z = z.transpose(0, 1)
                    h = z + params[op.bias].unsqueeze(1) if op.bias is not None else z.contiguous()
                else:
                    h = torch.baddbmm(params[op.bias].unsqueeze(1), h, w) if op.bias is not None else torch.bmm(h, w)
            else:  # before the first Linear, h is the caller's x: never modify it in place
                h = _activation_forward(op, h, inplace=h.dim() == 3)
        return h
