"""What studies read from weights: gradients at init, a stored comparison retrained, distinct units.

One home for the helpers that ``symmetry`` and ``bias`` (and any study that looks inside the
trained networks) share:

- ``gradients_at_init``: per parameter, the norm of the loss gradient of a freshly initialized
  member of a comparison;
- ``retrained_members``: the members of a stored comparison trained again exactly as
  ``compare`` trained them (same member chunks, split, factory and ``TrainConfig``), with
  their initial and trained weights — the store keeps numbers, not weights;
- ``distinct_units`` / ``layer_units``: how many different units a layer has (and its rank).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from initlab.errors import UserError

GRADIENT_FLOOR = 1e-5  # a gradient norm below this fraction of the model's largest is rounding noise


def distinct_units(weight: torch.Tensor, bias: torch.Tensor | None = None, *, tol: float = 1e-6) -> int:
    """How many distinct units a layer has: greedy clusters of its rows ``[W[i, :], b[i]]``.

    Rows ``i`` and ``j`` are the same unit when ``max_k |r_ik - r_jk| <= tol * max|r|`` (an
    all-zero layer is one unit). Clusters are formed greedily: the first unassigned row takes
    every unassigned row within tolerance of it. Gradient descent keeps identical rows
    bit-identical, while random rows differ by a sizeable fraction of the scale, so the count
    does not depend on ``tol`` over many decades.
    """
    if weight.dim() < 2:
        raise UserError(f"distinct_units needs a weight of >= 2 dims; got shape {tuple(weight.shape)}")
    if not tol >= 0:
        raise UserError(f"tol must be a number >= 0; got {tol!r}")
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).double()], dim=1)
    limit = tol * float(rows.abs().max()) if rows.numel() else 0.0
    distance = torch.cdist(rows, rows, p=math.inf)
    unassigned = torch.ones(rows.shape[0], dtype=torch.bool)
    clusters = 0
    while bool(unassigned.any()):
        first = int(unassigned.nonzero()[0])
        unassigned &= distance[first] > limit
        clusters += 1
    return clusters


def hidden_layers(model: torch.nn.Module) -> list[tuple[str, str | None]]:
    """(weight name, bias name or None) of every weight matrix but the last (the output layer)."""
    params = dict(model.named_parameters())
    weights = [n for n, p in params.items() if p.dim() >= 2]
    out = []
    for name in weights[:-1]:
        bias = name.rsplit(".", 1)[0] + ".bias" if "." in name else "bias"
        out.append((name, bias if bias in params else None))
    return out


def layer_units(
    state: dict[str, torch.Tensor], layers: list[tuple[str, str | None]], *, tol: float = 1e-6
) -> dict[str, dict[str, int]]:
    """Module name -> ``{"distinct", "rank", "width"}`` of each (weight, bias) in ``layers``."""
    out = {}
    for w, b in layers:
        weight = state[w]
        out[w.rsplit(".", 1)[0]] = {
            "distinct": distinct_units(weight, state[b] if b else None, tol=tol),
            "rank": int(torch.linalg.matrix_rank(weight.double().reshape(weight.shape[0], -1))),
            "width": int(weight.shape[0]),
        }
    return out


def template_model(config: Any, dataset: Any) -> torch.nn.Module:
    """The comparison's model, uninitialized (for parameter names and shapes)."""
    from initlab.engine.init import build_template
    from initlab.sweep.chunks import model_factory

    return build_template(model_factory(config, dataset.input_shape, dataset.num_classes))


def gradients_at_init(config: Any, dataset: Any, scheme: str, *, seed: int, batch: int) -> dict[str, float]:
    """Parameter name -> L2 norm of d(mean cross-entropy)/d(parameter) at init, on ``batch`` samples."""
    from initlab.engine import initialize_member
    from initlab.schemes import scheme_from_spec
    from initlab.sweep.chunks import member_init

    model = template_model(config, dataset)
    initialize_member(model, member_init(scheme), seed, bias_init=scheme_from_spec(config.bias_init))
    n = min(batch, dataset.x_train.shape[0])
    loss = F.cross_entropy(model(dataset.x_train[:n]), dataset.y_train[:n])
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()])
    return {name: float(g.double().norm()) for name, g in zip(names, grads)}


def with_gradient(norms: dict[str, float]) -> list[str]:
    """The parameters whose gradient norm exceeds ``GRADIENT_FLOOR`` × the largest: float32 rounding
    leaves ~1e-8 where the exact gradient is zero (e.g. constant init, where equal logits send
    ``sum_k (p_k - y_k) = 0`` back to the hidden layers)."""
    floor = GRADIENT_FLOOR * max(norms.values(), default=0.0)
    return [n for n, v in norms.items() if v > floor]


@dataclass(frozen=True)
class Retrained:
    """One member of a stored comparison, trained again: its initial and trained ``state_dict``."""

    scheme: str
    seed: int
    lr: float | None
    test_acc: float
    init: dict[str, torch.Tensor]
    trained: dict[str, torch.Tensor]


def retrained_members(config: Any, dataset: Any, schemes: set[str] | None = None) -> Iterator[Retrained]:
    """Train the comparison's member chunks again; yield every member (of ``schemes``, None: all).

    Same member chunks, model factory and ``TrainConfig`` as ``initlab.sweep.compare``, so the
    runs equal the stored ones (bit for bit on the same machine and thread count; callers check
    ``test_acc`` against the store). Chunks without a wanted member are skipped.
    """
    from initlab.engine import member_state_dict
    from initlab.engine.init import initial_state
    from initlab.sweep.chunks import make_chunks, model_factory
    from initlab.sweep.runner import engine_members, train_ensemble

    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    tc = config.train_config()
    for chunk in make_chunks(config):
        if schemes is not None and not any(m.scheme in schemes for m in chunk.members):
            continue
        members = engine_members(chunk)
        init_params, _ = initial_state(factory, members, bias_init=tc.bias_init, device=torch.device("cpu"))
        result = train_ensemble(config, chunk, dataset)
        for i, (spec, m) in enumerate(zip(chunk.members, result.members)):
            if schemes is None or spec.scheme in schemes:
                init = {n: t[i] for n, t in init_params.items()}
                yield Retrained(spec.scheme, spec.seed, spec.lr, m.test_acc, init, member_state_dict(result.state, i))


def stored_accuracy(data: Any) -> dict[tuple[str, int, float | None], float]:
    """(scheme, seed, lr) -> final test accuracy of every stored member of a ``ReportData``."""
    return {(r.scheme, r.seed, r.lr): r.test_acc for r in data.all_runs}


__all__ = [
    "GRADIENT_FLOOR",
    "Retrained",
    "distinct_units",
    "gradients_at_init",
    "hidden_layers",
    "layer_units",
    "retrained_members",
    "stored_accuracy",
    "template_model",
    "with_gradient",
]
