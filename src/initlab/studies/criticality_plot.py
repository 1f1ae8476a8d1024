"""The ``criticality`` study's figure: accuracy heatmaps over (sigma_w^2, depth) with the 6 xi_c line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from initlab.studies.criticality import Grid, Measured, mean_grid, trainable_depth


def figure(path: Path, s: dict[str, Any], grid: Grid, m: Measured, final: list[str]) -> Path:
    """One heatmap per optimizer (final budget) on evenly spaced cells; the 6 ξ_c line is placed by
    log-linear interpolation between the cell centres (σ_w² and depth are both roughly geometric)."""
    import numpy as np

    from initlab.plotting import new_figure, save, style

    sigmas = grid.sigmas
    curve_x = sorted(
        set(np.geomspace(min(sigmas), max(sigmas), s["curve_points"]).tolist())
        | set(sigmas)
        | ({grid.critical} if min(sigmas) < grid.critical < max(sigmas) else set())
    )
    curve = [(x, trainable_depth(x, grid.sigma_b2) if x != grid.critical else math.inf) for x in curve_x]
    fig, axes = new_figure(len(final), size=(7.5 * len(final), 5.8))
    for ax, label in zip(axes, final):
        mesh = _heatmap(ax, grid, mean_grid(m, label), curve, m.chance)
        style(
            ax,
            xlabel=r"$\sigma_w^2$ (weight variance × fan-in)",
            ylabel="depth (hidden tanh layers)",
            title=f"{label} (lr tuned per column)",
            grid=None,
            legend={"loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncol": 2},
        )
    fig.colorbar(mesh, ax=axes[-1], label="test accuracy (mean over seeds)")
    return save(
        fig,
        path,
        title=rf"criticality: tanh MLPs, $\sigma_b^2$ = {grid.sigma_b2:g}, accuracy vs mean-field depth scale",
    )


def _heatmap(ax: Any, grid: Grid, means: dict[int, dict[float, float]], curve: list, chance: float) -> Any:
    import numpy as np

    from initlab.plotting import heatmap

    sigmas, depths = grid.sigmas, grid.depths
    log_s, log_d = np.log(np.asarray(sigmas, dtype=float)), np.log2(np.asarray(depths, dtype=float))

    def x_of(sigma: float) -> float:
        return float(np.interp(math.log(sigma), log_s, np.arange(len(sigmas)))) if len(sigmas) > 1 else 0.0

    def y_of(depth: float) -> float:
        if not math.isfinite(depth) or depth > depths[-1]:
            return len(depths) - 0.5  # above the grid: draw along its top edge
        if depth < depths[0]:
            return -0.5
        return float(np.interp(math.log2(depth), log_d, np.arange(len(depths)))) if len(depths) > 1 else 0.0

    mesh = heatmap(
        ax,
        [[means[d][sw] for sw in sigmas] for d in depths],
        xticklabels=[f"{x:g}" for x in sigmas],
        yticklabels=[str(d) for d in depths],
        vmin=chance,
        vmax=1.0,
    )
    ax.plot(
        [x_of(x) for x, _ in curve],
        [y_of(y) for _, y in curve],
        color="red",
        lw=2.5,
        label=r"$6\,\xi_c$: mean-field trainable depth (cells below it: inside)",
    )
    if sigmas[0] <= grid.critical <= sigmas[-1]:
        ax.axvline(
            x_of(grid.critical), color="red", ls="--", lw=1, label=rf"critical $\sigma_w^2$ = {grid.critical:.3g}"
        )
    return mesh


__all__ = ["figure"]
