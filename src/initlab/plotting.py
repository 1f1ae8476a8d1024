"""The one plotting helper behind every figure initlab writes (compare, diagnose, studies).

Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg canvas: no display, no
pyplot state shared between threads, nothing to close. matplotlib is imported only when a
figure is made, so ``import initlab`` stays light. Every PNG is saved at ``DPI`` after
``tight_layout``, so the figures of one report look alike.

Typical use::

    fig, (ax,) = new_figure(size=(7, 4.2))
    seed_band(ax, xs, mean, lo, hi, color=palette(names)["he_normal"], label="he_normal")
    style(ax, xlabel="epoch", ylabel="test accuracy (%)", logy=False, legend=True)
    save(fig, out / "curves.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DPI = 110  # every PNG: about 1200 px wide for an 11-inch figure


def new_figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float], **subplots: Any) -> tuple[Any, list[Any]]:
    """A figure of ``size`` inches with ``nrows × ncols`` axes, returned as a flat list (row-major).

    ``subplots`` go to ``Figure.subplots`` (``sharey=True``, ``gridspec_kw={...}``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, list(axes.flat)


def palette(names: Sequence[str]) -> dict[str, tuple]:
    """One colour per name, in order: tab10 up to ten names, tab20 beyond (it cycles after 20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def seed_band(
    ax: Any,
    xs: Sequence[float],
    mean: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    *,
    color: Any,
    label: str | None = None,
    marker: str | None = None,
    alpha: float = 0.15,
) -> None:
    """The mean over seeds as a line and the spread over seeds (``lo``..``hi``) as a band."""
    ax.plot(xs, mean, color=color, label=label, lw=1.6, marker=marker, ms=4 if marker else None)
    ax.fill_between(xs, lo, hi, color=color, alpha=alpha, lw=0)


def heatmap(
    ax: Any,
    values: Sequence[Sequence[float]],
    *,
    xticklabels: Sequence[str],
    yticklabels: Sequence[str],
    vmin: float,
    vmax: float,
    fmt: str = "{:.2f}",
) -> Any:
    """``values[row][col]`` as evenly spaced cells (row 0 at the bottom, cell centres at integer
    coordinates), each annotated with ``fmt`` in a colour readable on it; returns the image for a
    colorbar."""
    import numpy as np

    grid = np.asarray(values, dtype=float)
    rows, cols = grid.shape
    extent = (-0.5, cols - 0.5, -0.5, rows - 0.5)
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, extent=extent)
    for i in range(rows):
        for j in range(cols):
            color = "white" if grid[i, j] < (vmin + vmax) / 2 else "black"
            ax.text(j, i, fmt.format(grid[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(cols), list(xticklabels))
    ax.set_yticks(range(rows), list(yticklabels))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    return image


def style(
    ax: Any,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    logx: bool = False,
    logy: bool | int = False,
    grid: str | None = "both",
    legend: bool | dict[str, Any] = False,
    title_size: float | None = None,
) -> None:
    """Labels, log axes (``logy=2``: base 2), a light grid on ``grid`` ("both", "x", "y" or None),
    and a legend (``True`` or the keywords of ``ax.legend``; small type by default) when the axes
    have labelled artists."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title, fontsize=title_size)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log", base=logy if logy is not True and logy > 1 else 10)
    if grid:
        ax.grid(axis=grid, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(**({"fontsize": 8} | (legend if isinstance(legend, dict) else {})))


def save(fig: Any, path: Path, *, title: str | None = None, title_size: float | None = None) -> Path:
    """Lay out, write ``path`` as PNG at ``DPI`` (its folder made if needed) and return it."""
    if title is not None:
        fig.suptitle(title, fontsize=title_size)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


__all__ = ["DPI", "heatmap", "new_figure", "palette", "save", "seed_band", "style"]
