"""Layer-sequential unit-variance scaling (LSUV; Mishkin & Matas 2016, Algorithm 1).

After a pre-init (orthogonal for policy ``"lsuv"``, the auto plan for ``"auto+lsuv"``), each
Linear/Conv layer, in execution order, is rescaled until the variance of its output on a batch
is 1 within ``tol``:

.. math::
    W_l \\leftarrow W_l / \\sqrt{\\operatorname{Var}[W_l x_l]}, \\quad
    \\text{until } |\\operatorname{Var}[W_l x_l] - 1| < \\text{tol} \\text{ or } T_{\\max} \\text{ rescalings}

(the paper: tol = 0.1, T_max = 10). Earlier layers are final when a later one is measured, so
each layer sees the input it will see at the start of training. The forward passes run in eval
mode (no dropout draws, no BatchNorm running-stat updates) under ``torch.no_grad``; the global
RNG state is restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from initlab.errors import UserError
from initlab.layers import call_model, eval_mode
from initlab.policy.plans import LsuvRecord

DEFAULT_TOL = 0.1
DEFAULT_MAX_ITER = 10


class _Captured(Exception):
    """Raised by the hook to stop the forward pass once the measured layer has run."""


def check_data(data: Any) -> None:
    """A batch: a floating tensor (or a tuple/list/dict of tensors) with at least 2 samples."""
    tensors = (
        list(data.values()) if isinstance(data, dict) else list(data) if isinstance(data, (tuple, list)) else [data]
    )
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise UserError(
            f"data must be a batch tensor (or a tuple/dict of tensors) for the model's forward; got {type(data).__name__}"
        )
    first = tensors[0]
    if first.ndim == 0 or first.shape[0] < 2:
        raise UserError(f"data must be a batch of at least 2 samples; got shape {tuple(first.shape)}")
    if first.is_floating_point() and not torch.isfinite(first).all():
        raise UserError("data contains NaN or inf")


def _output_variance(model: nn.Module, module: nn.Module, data: Any) -> float | None:
    box: list[float] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        box.append(float(out.detach().double().var()))
        raise _Captured

    handle = module.register_forward_hook(hook)
    try:
        call_model(model, data)
    except _Captured:
        pass
    finally:
        handle.remove()
    return box[0] if box else None


def execution_order(model: nn.Module, names: Sequence[str], data: Any) -> list[str]:
    """``names`` (module names) sorted by their first call on ``data``; uncalled ones last."""
    modules = dict(model.named_modules())
    first_call: dict[str, int] = {}
    handles = []
    for name in names:

        def hook(mod: nn.Module, args: Any, output: Any, _name: str = name) -> None:
            first_call.setdefault(_name, len(first_call))

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            call_model(model, data)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the model's forward failed on data: {first}") from exc
    finally:
        for h in handles:
            h.remove()
    return sorted(names, key=lambda n: first_call.get(n, len(names) + list(names).index(n)))


def lsuv_(
    model: nn.Module,
    data: Any,
    layers: Sequence[str],
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> list[LsuvRecord]:
    """Rescale the weight of each module in ``layers`` (dotted names) in place; one record per layer."""
    check_data(data)
    if not (0 < tol < 1):
        raise UserError(f"tol must be in (0, 1); got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise UserError(f"max_iter must be an integer >= 1; got {max_iter!r}")
    modules = dict(model.named_modules())
    records: list[LsuvRecord] = []
    ordered = execution_order(model, list(layers), data)
    with eval_mode(model), torch.no_grad():
        for name in ordered:
            module = modules[name]
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor):
                records.append(LsuvRecord(name, 1.0, 0, None, None, False, "no weight"))
                continue
            before = _output_variance(model, module, data)
            if before is None:
                records.append(LsuvRecord(name, 1.0, 0, None, None, False, "not called on the batch"))
                continue
            variance, scale, iterations, note = before, 1.0, 0, ""
            while abs(variance - 1.0) >= tol and iterations < max_iter:
                if not (variance > 0 and math.isfinite(variance)):
                    note = f"output variance {variance:g}: cannot rescale"
                    break
                factor = 1.0 / math.sqrt(variance)
                weight.mul_(factor)
                scale *= factor
                iterations += 1
                measured = _output_variance(model, module, data)
                if measured is None:  # the forward stopped calling it: nothing more to measure
                    note = "not called on the batch after rescaling"
                    break
                variance = measured
            converged = abs(variance - 1.0) < tol
            if not converged and not note:
                note = f"not within {tol} after {max_iter} rescalings"
            records.append(LsuvRecord(name, scale, iterations, before, variance, converged, note))
    return records
