"""The learning rate that goes with the init: ``initlab.suggest_lr(model, x, y)``.

An initialization is half of the answer; at 1,000 plain layers the learning rate that trains is
two orders of magnitude below the usual 1e-3 and its window is narrow. ``suggest_lr`` judges the
model *as it is* (its current weights, the init the user chose): it trains copies at each
learning rate of a log grid for a short budget, stacked on the ensemble engine
(``initlab.engine.train``: one member per learning rate, batched matmuls for MLPs, ``torch.func``
otherwise), on a validation split carved from ``x, y``, and picks by the rule below.

The grid (``grid=None``): a coarse pass over several decades (Adam 1e-6 ... 1e-1, SGD with
momentum 0.9 1e-4 ... 1, one point per decade), then a refined pass at 10^(±1/3) and 10^(±2/3)
around the coarse choice: 10 trainings in two stacked runs.

The rule (documented in ``docs/suggest-lr.md``), on validation data only:

1. A grid point *fails* when its training diverged (a non-finite loss), its final validation
   loss is not below the model's validation loss before training, or its final validation
   accuracy is within 1 point of chance (the largest class's share of the validation split).
2. A point that did not fail is *stable* when its final validation loss is within
   ``STABLE_TOLERANCE`` (10%) of its best over the epochs: a rate that was best early and is
   drifting away (towards divergence) is not stable.
3. The choice is the stable point with the lowest final validation loss (a smoother measure
   than accuracy on a small split; ties: the smaller rate).
4. Keep working: when the next larger rate of the grid failed or was unstable, the choice is at
   the edge of the window; it moves one grid point down if that point is stable and its final
   validation loss is within ``STABLE_TOLERANCE`` (10%) of the choice's.
5. No stable point: the smallest rate that did not fail, else the smallest of the grid, with
   ``ok=False`` and a note.

The model's weights are never changed (copies are trained); test data is never seen (the
caller passes training data; the split is carved from it).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from initlab.engine.config import OPTIMIZERS
from initlab.errors import UserError

COARSE_GRIDS = {"adam": tuple(10.0**k for k in range(-6, 0)), "sgd": tuple(10.0**k for k in range(-4, 1))}
REFINE_FACTORS = (10 ** (-2 / 3), 10 ** (-1 / 3), 10 ** (1 / 3), 10 ** (2 / 3))
SGD_MOMENTUM = 0.9
VAL_FRACTION = 0.2  # of x, y, stratified
DEFAULT_EPOCHS = 3  # steps=None: three passes over the training part
STABLE_TOLERANCE = 0.10  # final validation loss within 10% of the run's best: still working
CHANCE_MARGIN = 0.01  # a final validation accuracy within 1 point of chance is a failure
MEMORY_HEADROOM = 0.75  # share of the available memory the stacked copies may use


@dataclass(frozen=True)
class LrPoint:
    """One grid point: its final validation loss and accuracy, per-epoch validation losses, and
    the rule's verdict (``failed``, ``stable``)."""

    lr: float
    val_loss: float
    val_acc: float
    val_losses: tuple[float, ...]
    val_accs: tuple[float, ...]
    diverged: bool
    failed: bool
    stable: bool
    stage: str  # "coarse", "refine" or "given"


@dataclass(frozen=True)
class LrSuggestion:
    """What ``suggest_lr`` found. ``lr`` is the choice; ``points`` every grid point (by lr)."""

    lr: float
    points: tuple[LrPoint, ...]
    optimizer: str
    epochs: int
    steps: int
    batch_size: int
    n_train: int
    n_val: int
    initial_val_loss: float
    seconds: float
    ok: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def grid(self) -> tuple[float, ...]:
        return tuple(p.lr for p in self.points)

    @property
    def val_loss(self) -> tuple[float, ...]:
        return tuple(p.val_loss for p in self.points)

    @property
    def val_acc(self) -> tuple[float, ...]:
        return tuple(p.val_acc for p in self.points)

    def table(self) -> str:
        """The grid as a text table; the chosen row is marked with ``<-``."""
        head = (
            f"suggest_lr: {self.optimizer}, {self.epochs} epoch(s) = {self.steps} steps of batch {self.batch_size}, "
            f"{self.n_train} train / {self.n_val} validation samples, {self.seconds:.1f} s; "
            f"validation loss before training {self.initial_val_loss:.4g}"
        )
        lines = [head, f"{'lr':>10}  {'val_loss':>9}  {'val_acc':>7}  {'verdict':<9} stage"]
        for p in self.points:
            verdict = "diverged" if p.diverged else "failed" if p.failed else "stable" if p.stable else "unstable"
            mark = "  <-" if p.lr == self.lr else ""
            lines.append(f"{p.lr:>10.3g}  {p.val_loss:>9.4g}  {p.val_acc:>7.3f}  {verdict:<9} {p.stage}{mark}")
        lines.append(f"suggested lr: {self.lr:.3g}" + ("" if self.ok else " (no stable rate found; see notes)"))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | None = None, ax: Any = None) -> Any:
        """Validation loss and accuracy against lr (log axis), the choice marked; saved to ``path`` if given."""
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        lrs = [p.lr for p in self.points]
        ax.plot(lrs, [p.val_acc for p in self.points], "o-", label="validation accuracy")
        ax.set_xscale("log")
        ax.set_xlabel(f"learning rate ({self.optimizer})")
        ax.set_ylabel("validation accuracy")
        ax.axvline(self.lr, color="k", linestyle=":", label=f"suggested {self.lr:.3g}")
        for p in self.points:
            if p.failed or not p.stable:
                ax.plot([p.lr], [p.val_acc], "x", color="red")
        ax.legend(loc="best", fontsize=8)
        if fig is not None and path is not None:
            fig.tight_layout()
            fig.savefig(path, dpi=120)
        return fig if fig is not None else ax.figure

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = list(self.grid)
        return out


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


# --- memory (stand-in for initlab.engine.memory.members_that_fit once merged) --------------------


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def members_per_chunk(model: nn.Module, x: torch.Tensor, batch_size: int, optimizer: str, wanted: int) -> int:
    """How many stacked copies fit in memory at once (activations + parameters + optimizer state).

    Per copy: activations ``2 * batch * A * 4`` bytes (every module's output kept for backward,
    and its gradient; ``A`` = activation elements per sample, summed over leaf modules, measured
    by one forward pass of a copy) plus parameters, gradients and optimizer state
    ``(2 + k) * P * 4`` (k = 2 for Adam, 1 for SGD with momentum). At most ``MEMORY_HEADROOM`` of
    the available memory is used. ``UserError`` before any training when one copy does not fit.
    A ``checkpointed`` model keeps ``depth/s + s`` layers' activations instead of ``depth``.
    """
    probe = copy.deepcopy(model).eval()
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: sizes.append(out.numel()) if isinstance(out, torch.Tensor) else None
        )
        for m in probe.modules()
        if not any(True for _ in m.children())
    ]
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        probe(x[:1].to(next(probe.parameters()).device))
    for h in hooks:
        h.remove()
    activations = sum(sizes)
    from initlab.engine.checkpointing import Checkpointed, activation_layers

    if isinstance(probe, Checkpointed):  # only the segments' inputs are kept, one segment recomputed at a time
        depth = len(probe.seq)
        activations = math.ceil(activations * activation_layers(depth, probe.segments) / depth)
    params = sum(p.numel() for p in probe.parameters())
    k = 2 if optimizer == "adam" else 1
    per_copy = 4 * (2 * batch_size * activations + (2 + k) * params)
    budget = int(MEMORY_HEADROOM * _available_bytes())
    fit = budget // max(per_copy, 1)
    if fit < 1:
        raise UserError(
            f"one training copy of this model needs about {per_copy / 2**30:.1f} GiB (batch {batch_size} x "
            f"{activations} activation values per sample, {params} parameters); {budget / 2**30:.1f} GiB may be used: "
            "lower batch_size, or wrap an nn.Sequential with initlab.engine.checkpointing.checkpointed(model)"
        )
    return int(min(wanted, fit))


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


def _points(
    lrs: Sequence[float],
    runs: Sequence[tuple[list[float], list[float], bool]],
    stage: str,
    initial_loss: float,
    chance: float,
) -> list[LrPoint]:
    points = []
    for lr, (losses, accs, diverged) in zip(lrs, runs):
        final_loss = losses[-1] if losses else math.nan
        final_acc = accs[-1] if accs else math.nan
        failed = (
            diverged
            or not math.isfinite(final_loss)
            or not final_loss < initial_loss
            or not final_acc > chance + CHANCE_MARGIN
        )
        best = min((v for v in losses if math.isfinite(v)), default=math.nan)
        stable = (not failed) and final_loss <= (1 + STABLE_TOLERANCE) * best
        points.append(LrPoint(lr, final_loss, final_acc, tuple(losses), tuple(accs), diverged, failed, stable, stage))
    return points


def choose(points: Sequence[LrPoint]) -> tuple[float, bool, list[str]]:
    """The rule of the module docstring on measured points: (lr, ok, notes)."""
    pts = sorted(points, key=lambda p: p.lr)
    stable = [i for i, p in enumerate(pts) if p.stable]
    if not stable:
        alive = [p for p in pts if not p.failed]
        pick = (alive or pts)[0].lr
        return (
            pick,
            False,
            [
                "no learning rate of the grid trained stably; the smallest that did not fail is given"
                if alive
                else "every learning rate of the grid failed; the smallest is given"
            ],
        )
    best = min(stable, key=lambda i: (pts[i].val_loss, pts[i].lr))
    notes = []
    edge = best + 1 < len(pts) and not pts[best + 1].stable
    lower = pts[best - 1] if best > 0 else None
    if edge and lower is not None and lower.stable and lower.val_loss <= (1 + STABLE_TOLERANCE) * pts[best].val_loss:
        notes.append(
            f"lr {pts[best].lr:.3g} is next to a failing rate ({pts[best + 1].lr:.3g}); the next smaller "
            f"one, {lower.lr:.3g}, keeps working within {STABLE_TOLERANCE:.0%} of its validation loss"
        )
        best -= 1
    return pts[best].lr, True, notes


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
    from initlab.data.dataset import stratified_indices
    from initlab.seeding import derive_generator

    grid, x, y = _check_inputs(model, x, y, optimizer, grid, steps, batch_size, seed)
    classes = _outputs(model, x)
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise UserError(f"y has label {bad}; the model outputs {classes} classes: allowed labels 0..{classes - 1}")
    n = int(y.numel())
    n_val = max(1, round(VAL_FRACTION * n))
    val_idx = stratified_indices(y.cpu(), n_val, derive_generator(seed, "suggest_lr", "validation"))
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    train_idx = keep.nonzero().flatten()
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    data = SimpleNamespace(
        x_train=x[train_idx.to(device)],
        y_train=y[train_idx.to(device)],
        x_test=x[val_idx.to(device)],
        y_test=y[val_idx.to(device)],
    )
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    epochs = DEFAULT_EPOCHS if steps is None else math.ceil(steps / steps_per_epoch)
    initial = _initial_val_loss(model, data.x_test, data.y_test)
    chance = float(torch.bincount(data.y_test).max()) / n_val
    wanted = len(grid) if grid is not None else len(COARSE_GRIDS[optimizer])
    chunk = members_per_chunk(model, x, batch_size, optimizer, wanted)

    start = time.perf_counter()
    if grid is not None:
        points = _points(
            grid, _train_grid(model, data, grid, optimizer, epochs, batch_size, seed, chunk), "given", initial, chance
        )
    else:
        coarse = COARSE_GRIDS[optimizer]
        points = _points(
            coarse,
            _train_grid(model, data, coarse, optimizer, epochs, batch_size, seed, chunk),
            "coarse",
            initial,
            chance,
        )
        centre, _, _ = choose(points)
        refine = [centre * f for f in REFINE_FACTORS]
        points += _points(
            refine,
            _train_grid(model, data, refine, optimizer, epochs, batch_size, seed, chunk),
            "refine",
            initial,
            chance,
        )
    points.sort(key=lambda p: p.lr)
    lr, ok, notes = choose(points)
    return LrSuggestion(
        lr=lr,
        points=tuple(points),
        optimizer=optimizer,
        epochs=epochs,
        steps=epochs * steps_per_epoch,
        batch_size=batch_size,
        n_train=len(train_idx),
        n_val=n_val,
        initial_val_loss=initial,
        seconds=time.perf_counter() - start,
        ok=ok,
        notes=tuple(notes),
    )


def _initial_val_loss(model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor) -> float:
    probe = copy.deepcopy(model).eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        logits = probe(x_val.to(next(probe.parameters()).dtype))
    return float(torch.nn.functional.cross_entropy(logits.float(), y_val))
