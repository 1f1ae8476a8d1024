"""The forward hooks of ``diagnose``: per weighted layer, its output statistics, the activation
that follows it, dead and saturated units, and twins among its units."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.diagnose.symmetry import REL_TOL, duplicate_rows, sample_rows
from initlab.layers import (
    SATURATION_TESTS,
    activation_of_module,
    first_tensor,
    is_transposed_linear,
    module_kind,
)

# Kinds of module that may sit between a layer and its activation: they reshape, normalize, pool,
# drop or scale (initlab.layers.module_kind).
_PASSTHROUGH_KINDS = ("norm", "transparent", "scale")
# Leaf modules a mean-field chain may contain besides its Linear/Conv layers (eval mode).


def layer_kind(module: nn.Module) -> str | None:
    """The kind of a weighted layer (its own ``weight`` has >= 2 dims), or ``None``."""
    weight = module._parameters.get("weight")
    if (
        not isinstance(weight, torch.Tensor)
        or isinstance(weight, nn.parameter.UninitializedParameter)
        or weight.dim() < 2
    ):
        return None
    kind = module_kind(module)
    return kind if kind in ("linear", "conv", "conv_transpose", "embedding", "bilinear") else "other"


def _units_and_fan_in(module: nn.Module, kind: str) -> tuple[int, int]:
    w = module.weight
    if is_transposed_linear(module):  # transformers' Conv1D: (in, out)
        return w.shape[1], w.shape[0]
    if kind == "conv_transpose":
        groups = module.groups
        per_out = (w.shape[0] // groups) * math.prod(w.shape[2:]) / math.prod(module.stride)
        return w.shape[1] * groups, max(1, round(per_out))
    if kind == "embedding":
        return w.shape[1], 1
    return w.shape[0], int(w[0].numel())


def _unit_weight_rows(module: nn.Module, kind: str) -> list[torch.Tensor]:
    """Incoming weights (and bias) of each unit, one matrix per group of units that share inputs."""
    w = module.weight.detach()
    if is_transposed_linear(module):
        w = w.T
    bias = getattr(module, "bias", None)
    bias = bias.detach() if isinstance(bias, torch.Tensor) and bias.dim() == 1 else None
    if kind == "embedding":
        return [w.T]
    if kind == "conv_transpose":
        g = module.groups
        per = w.reshape(g, w.shape[0] // g, w.shape[1], -1).transpose(1, 2).reshape(g, w.shape[1], -1)
    elif kind == "conv":
        g = module.groups
        per = w.reshape(g, w.shape[0] // g, -1)
    else:
        per = w.reshape(1, w.shape[0], -1)
    if bias is not None and bias.numel() == per.shape[0] * per.shape[1]:
        per = torch.cat([per, bias.reshape(per.shape[0], per.shape[1], 1)], dim=2)
    return [m for m in per if m.shape[0] > 1]


@dataclass
class Record:
    name: str
    kind: str
    module: nn.Module
    units: int
    fan_in: int
    unit_axis: int
    batch: int
    out_mean: float = 0.0
    out_var: float = 0.0
    elements: int = 0
    activation: nn.Module | None = None
    act_name: str | None = None
    dead_frac: float = 0.0
    saturated_frac: float | None = None
    act_twins: torch.Tensor | None = None
    grad_var: float = math.nan
    grad_sq_norm: float = math.nan
    nonfinite_frac: float = 0.0

    def set_grad(self, grad: torch.Tensor) -> None:
        g2 = grad.detach().float().pow(2)
        self.grad_var = float(g2.mean(dtype=torch.float64))
        self.grad_sq_norm = float(g2.sum(dtype=torch.float64)) / self.batch


def _unit_matrix(a: torch.Tensor, axis: int, units: int) -> torch.Tensor | None:
    """``(units, everything else)`` view of a layer's output; ``None`` when the axis does not fit."""
    if a.dim() < 2 or a.shape[axis] != units:
        return None
    return a.movedim(axis, 0).reshape(units, -1)


class Probe:
    """Forward hooks that measure each weighted layer and find the activation that follows it."""

    def __init__(self, model: nn.Module, batch: int) -> None:
        self.batch = batch
        self.kinds: dict[nn.Module, tuple[str, str]] = {}
        self.calls: dict[nn.Module, int] = {}
        self.records: list[Record] = []
        self.pending: Record | None = None
        self._pending_out: torch.Tensor | None = None
        self.probes: list[torch.Tensor] = []
        self.trace: list[tuple[nn.Module, Any, Any]] = []  # (module, input, output) per hooked call
        self.handles = []
        # read before any hook exists: an unknown module is identified by running it on a probe
        self.activations = {m: activation_of_module(m) for m in model.modules()}
        self.passthrough = {m for m in model.modules() if module_kind(m) in _PASSTHROUGH_KINDS}
        for name, module in model.named_modules():
            kind = layer_kind(module)
            if kind is not None:
                self.kinds[module] = (name or "(model)", kind)
            if kind is not None or not any(True for _ in module.children()):
                self.handles.append(module.register_forward_hook(self._hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        first_in = args[0] if len(args) == 1 else args
        if module in self.kinds:
            output = self._on_weighted(module, output)
        else:
            self._on_leaf(module, output)
        self.trace.append((module, first_in, output))
        return output

    def _on_weighted(self, module: nn.Module, output: Any) -> Any:
        self._finish()
        out = first_tensor(output)
        if out is None or not torch.is_floating_point(out):
            return output
        name, kind = self.kinds[module]
        self.calls[module] = self.calls.get(module, 0) + 1
        if self.calls[module] > 1:
            name = f"{name}#{self.calls[module]}"
        units, fan_in = _units_and_fan_in(module, kind)
        rec = Record(
            name, kind, module, units, fan_in, unit_axis=1 if kind.startswith("conv") else -1, batch=self.batch
        )
        y = out.detach()
        rec.out_mean = float(y.mean(dtype=torch.float64))
        rec.out_var = float(y.float().pow(2).mean(dtype=torch.float64))
        rec.elements = max(1, out[0].numel()) if out.dim() > 1 else 1
        # counted here, before the activation: a ReLU maps -inf to 0 and would hide it
        rec.nonfinite_frac = float((~torch.isfinite(y)).double().mean()) if y.numel() else 0.0
        self.records.append(rec)
        self.pending = rec
        self._pending_out = out.detach()
        if not (isinstance(output, torch.Tensor) or type(output) in (tuple, list)):
            if out.requires_grad:  # an output we cannot replace: hook the tensor itself
                out.register_hook(rec.set_grad)
            return output
        # A zero added to every output: differentiating the loss w.r.t. these reaches every
        # layer (even with frozen weights), and the gradient hook sits on a tensor that an
        # in-place activation cannot overwrite.
        probe = torch.zeros((), dtype=out.dtype, device=out.device, requires_grad=True)
        self.probes.append(probe)
        new_out = out + probe
        new_out.register_hook(rec.set_grad)
        if isinstance(output, torch.Tensor):
            return new_out
        return type(output)([new_out, *output[1:]])

    def _on_leaf(self, module: nn.Module, output: Any) -> None:
        if self.pending is None:
            return
        act = self.activations.get(module)
        act_name = act[0] if act is not None else None
        out = first_tensor(output)
        if act_name is not None and out is not None:
            self.pending.activation, self.pending.act_name = module, act_name
            self._finish(out.detach())
            return
        if module not in self.passthrough:
            self._finish()

    def _finish(self, post: torch.Tensor | None = None) -> None:
        rec = self.pending
        if rec is None:
            return
        self.pending = None
        a = self._pending_out if post is None else post
        self._pending_out = None
        mat = _unit_matrix(a, rec.unit_axis, rec.units)
        if mat is None:
            return
        mat = mat.detach()
        alive = (mat != 0).any(dim=1)
        rec.dead_frac = float((~alive).double().mean())
        check = SATURATION_TESTS.get(rec.act_name or "")
        rec.saturated_frac = float(check(mat).double().mean()) if check is not None else None
        scale = float(mat.abs().max()) if mat.numel() else 0.0
        constant = (mat.amax(dim=1) - mat.amin(dim=1)) <= REL_TOL * scale
        rows = sample_rows(mat.shape[0])
        if rows is not None:
            rows = rows.to(mat.device)
            mat, constant = mat[rows], constant[rows]
        rec.act_twins = duplicate_rows(mat, skip=constant)

    def finish(self) -> None:
        self._finish()


def weight_twins(rec: Record) -> torch.Tensor:
    """Units with a twin by incoming weights, over every unit or over ``sample_rows``' sample."""
    rows = sample_rows(rec.units)
    count = rec.units if rows is None else len(rows)
    twins = torch.zeros(count, dtype=torch.bool)
    blocks = _unit_weight_rows(rec.module, rec.kind)  # groups of units in output order
    if not blocks or sum(b.shape[0] for b in blocks) != rec.units:
        return twins
    if rows is None:
        return torch.cat([duplicate_rows(b).cpu() for b in blocks])
    if len(blocks) == 1:
        return duplicate_rows(blocks[0][rows.to(blocks[0].device)]).cpu()
    return twins  # a grouped layer this wide: not checked
