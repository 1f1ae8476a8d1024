"""The rule that picks a learning rate from measured grid points (``initlab.lr``'s docstring, steps 1-5).

All judged on validation data: a point *fails* (diverged, no better than before training, or
within ``CHANCE_MARGIN`` of chance), is *stable* (final validation loss within
``STABLE_TOLERANCE`` of its best), and ``choose`` keeps the stable point with the lowest final
validation loss, one step down at the edge of the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from initlab.lr.result import LrPoint

STABLE_TOLERANCE = 0.10  # final validation loss within 10% of the run's best: still working
CHANCE_MARGIN = 0.01  # a final validation accuracy within 1 point of chance is a failure


def score_points(
    lrs: Sequence[float],
    runs: Sequence[tuple[list[float], list[float], bool]],
    stage: str,
    initial_loss: float,
    chance: float,
) -> list[LrPoint]:
    """Steps 1-2 of the rule: one ``LrPoint`` per lr of ``runs`` (failed? stable?)."""
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
