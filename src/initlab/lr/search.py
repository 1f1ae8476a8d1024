"""``suggest_lr``: check the inputs, carve the validation split, train the grid, apply the rule.

The grid and the rule are described in ``initlab.lr``'s docstring.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from initlab.engine.config import OPTIMIZERS
from initlab.errors import UserError
from initlab.lr.memory import members_per_chunk
from initlab.lr.result import LrPoint, LrSuggestion
from initlab.lr.rule import choose, score_points

COARSE_GRIDS = {"adam": tuple(10.0**k for k in range(-6, 0)), "sgd": tuple(10.0**k for k in range(-4, 1))}
REFINE_FACTORS = (10 ** (-2 / 3), 10 ** (-1 / 3), 10 ** (1 / 3), 10 ** (2 / 3))
SGD_MOMENTUM = 0.9
VAL_FRACTION = 0.2  # of x, y, stratified
DEFAULT_EPOCHS = 3  # steps=None: three passes over the training part


# --- validation --------------------------------------------------------------------------------


def _check_inputs(
    model: Any, x: Any, y: Any, optimizer: Any, grid: Any, steps: Any, batch_size: Any, seed: Any
) -> tuple[tuple[float, ...] | None, torch.Tensor, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(
            "model has no trainable parameters (none with requires_grad=True): nothing to tune a learning rate for"
        )
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer {optimizer!r} is not supported; allowed: {', '.join(sorted(OPTIMIZERS))}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{name} must be an integer >= 1; got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer; got {seed!r}")
    if grid is not None:
        values = list(grid) if isinstance(grid, (list, tuple)) else None
        if not values:
            raise UserError(f"grid must be a non-empty list of learning rates (finite numbers > 0); got {grid!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise UserError(f"grid value {v!r} is invalid; allowed: finite numbers > 0")
        grid = tuple(sorted({float(v) for v in values}))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise UserError(
            f"x must be a floating tensor (N, *features); got {type(x).__name__}"
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}"
        )
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise UserError(
            f"y must be an integer tensor (N,) of class indices; got {type(y).__name__}"
            f"{tuple(y.shape) if isinstance(y, torch.Tensor) else ''}"
        )
    if x.shape[0] != y.shape[0]:
        raise UserError(f"x has {x.shape[0]} samples but y has {y.shape[0]}; they must have the same length")
    if x.shape[0] < 10:
        raise UserError(
            f"x has {x.shape[0]} samples; suggest_lr needs at least 10 (a validation split is carved from them)"
        )
    return grid, x, y.long()


def _outputs(model: nn.Module, x: torch.Tensor) -> int:
    """Classes the model outputs, from one forward pass of a copy (the model itself is not run)."""
    probe = copy.deepcopy(model).eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        out = probe(x[:1].to(next(probe.parameters()).device))
    return int(out.shape[-1])


# --- training the grid ---------------------------------------------------------------------------


def _train_grid(
    model: nn.Module,
    data: Any,
    lrs: Sequence[float],
    optimizer: str,
    epochs: int,
    batch_size: int,
    seed: int,
    chunk: int,
) -> list[tuple[list[float], list[float], bool]]:
    """Per lr: (validation losses per epoch, validation accuracies per epoch, diverged)."""
    from initlab.engine import Member, TrainConfig, train

    state = {n: t.detach().clone() for n, t in model.state_dict().items()}

    def as_given(copy_: nn.Module, _seed: int) -> None:
        copy_.load_state_dict(state)

    as_given.__name__ = "as_given"
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lrs[0], momentum=SGD_MOMENTUM
    )  # used by SGD only
    out: list[tuple[list[float], list[float], bool]] = []
    for start in range(0, len(lrs), chunk):
        part = lrs[start : start + chunk]
        members = [Member(as_given, seed, name=f"lr={lr:.3g}", lr=lr) for lr in part]
        result = train(lambda: copy.deepcopy(model), members, data, config)
        for m in result.members:
            out.append(([r.test_loss for r in m.records], [r.test_acc for r in m.records], m.status == "diverged"))
    return out


def suggest_lr(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: str = "adam",
    grid: Sequence[float] | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> LrSuggestion:
    """The learning rate that trains ``model`` from its current weights, judged on validation data.

    Args:
        model: the model as it is (its current weights are the starting point of every copy;
            never changed).
        x: training inputs ``(N, *features)``; a stratified 20% validation split is carved from
            them and ``y`` (seeded by ``seed``). Never pass test data.
        y: integer labels ``(N,)`` of ``x``.
        optimizer: ``"adam"`` (torch defaults) or ``"sgd"`` (momentum 0.9).
        grid: learning rates to try (finite, > 0); None: the adaptive grid (module docstring).
        steps: optimizer steps per grid point, rounded up to whole epochs of the training part;
            None: 3 epochs.
        batch_size: samples per step.
        seed: the split and the data order (the same for every grid point).

    Returns:
        ``LrSuggestion``: ``.lr``, ``.grid``, ``.val_loss``/``.val_acc`` per grid point,
        ``print()``-able table, ``.plot()``.

    Raises:
        UserError: a model without trainable parameters, ``x``/``y`` of different lengths or
            labels outside the model's outputs, a non-positive or non-finite grid value,
            ``steps < 1``, an unknown optimizer, or a model whose training copy does not fit in
            memory; the model is untouched.
    """
    grid, x, y = _check_inputs(model, x, y, optimizer, grid, steps, batch_size, seed)
    _check_labels(y, _outputs(model, x))
    device = next(model.parameters()).device
    data, n_train, n_val = _split_validation(x.to(device), y.to(device), seed)
    steps_per_epoch = math.ceil(n_train / batch_size)
    epochs = DEFAULT_EPOCHS if steps is None else math.ceil(steps / steps_per_epoch)
    initial = _initial_val_loss(model, data.x_test, data.y_test)
    chance = float(torch.bincount(data.y_test).max()) / n_val
    wanted = len(grid) if grid is not None else len(COARSE_GRIDS[optimizer])
    chunk = members_per_chunk(model, x, batch_size, optimizer, wanted)

    start = time.perf_counter()

    def measure(lrs: Sequence[float], stage: str) -> list[LrPoint]:
        runs = _train_grid(model, data, lrs, optimizer, epochs, batch_size, seed, chunk)
        return score_points(lrs, runs, stage, initial, chance)

    if grid is not None:
        points = measure(grid, "given")
    else:
        points = measure(COARSE_GRIDS[optimizer], "coarse")
        centre, _, _ = choose(points)
        points += measure([centre * f for f in REFINE_FACTORS], "refine")
    points.sort(key=lambda p: p.lr)
    lr, ok, notes = choose(points)
    return LrSuggestion(
        lr=lr,
        points=tuple(points),
        optimizer=optimizer,
        epochs=epochs,
        steps=epochs * steps_per_epoch,
        batch_size=batch_size,
        n_train=n_train,
        n_val=n_val,
        initial_val_loss=initial,
        seconds=time.perf_counter() - start,
        ok=ok,
        notes=tuple(notes),
    )


def _check_labels(y: torch.Tensor, classes: int) -> None:
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise UserError(f"y has label {bad}; the model outputs {classes} classes: allowed labels 0..{classes - 1}")


def _split_validation(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[SimpleNamespace, int, int]:
    """The stratified validation split (``VAL_FRACTION`` of ``x, y``, drawn from the seed's
    ``("suggest_lr", "validation")`` stream) as the engine's data shape: (data, n_train, n_val)."""
    from initlab.data.dataset import stratified_indices
    from initlab.seeding import derive_generator

    n = int(y.numel())
    n_val = max(1, round(VAL_FRACTION * n))
    val_idx = stratified_indices(y.cpu(), n_val, derive_generator(seed, "suggest_lr", "validation"))
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    train_idx = keep.nonzero().flatten()
    device = x.device
    data = SimpleNamespace(
        x_train=x[train_idx.to(device)],
        y_train=y[train_idx.to(device)],
        x_test=x[val_idx.to(device)],
        y_test=y[val_idx.to(device)],
    )
    return data, len(train_idx), n_val


def _initial_val_loss(model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor) -> float:
    probe = copy.deepcopy(model).eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        logits = probe(x_val.to(next(probe.parameters()).dtype))
    return float(torch.nn.functional.cross_entropy(logits.float(), y_val))
