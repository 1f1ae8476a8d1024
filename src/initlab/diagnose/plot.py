"""The signal-propagation plot (matplotlib, imported lazily through ``initlab.plotting``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from initlab.diagnose.result import Diagnosis


def _positive(values: list[float | None]) -> list[float]:
    # log axes: zeros (zero init) and missing values are left out, not drawn at -inf
    return [v if v is not None and v > 0 and math.isfinite(v) else math.nan for v in values]


def plot_diagnosis(diagnosis: Diagnosis, path: Path, *, title: str | None = None) -> Path:
    """Forward ``out_var`` and backward ``grad_var`` per layer (log scale), measured as markers
    and predicted as dashed lines; unit fractions (dead, saturated, symmetric); and, when
    computed, the histogram of the Jacobian's singular values. Returns ``path``."""
    from matplotlib.ticker import MaxNLocator

    from initlab.plotting import new_figure, save, style

    layers = diagnosis.layers
    x = list(range(1, len(layers) + 1))
    preds = {p.name: p for p in diagnosis.predicted or []}
    sv = diagnosis.jacobian_singular_values
    panels = 3 if sv is None else 4
    fig, axes = new_figure(panels, size=(4.2 * panels, 3.8))

    for ax, key, label in (
        (axes[0], "out_var", "forward: E[y²] of layer output"),
        (axes[1], "grad_var", "backward: E[(∂ℓ/∂y)²]"),
    ):
        measured = _positive([getattr(s, key) for s in layers])
        ax.plot(x, measured, "o-", ms=3.5, lw=1, color="tab:blue", label="measured")
        if preds:
            predicted = _positive([getattr(preds[s.name], key) if s.name in preds else None for s in layers])
            ax.plot(x, predicted, "--", lw=1.5, color="tab:orange", label="mean-field theory")
        if any(not math.isnan(v) for v in measured):
            ax.set_yscale("log")
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "all values are 0", transform=ax.transAxes, ha="center", va="center", color="0.4")
        zeros = [i for i, v in zip(x, measured) if math.isnan(v)]
        if zeros and len(zeros) < len(x):
            ax.plot([], [], " ", label=f"{len(zeros)} layer(s) at 0 not shown")
        ax.set_xlim(0.5, len(x) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        style(ax, xlabel="layer (execution order)", title=label, title_size=10, grid=None, legend=True)

    ax = axes[2]
    for key, color, label in (
        ("dead_frac", "tab:red", "dead"),
        ("saturated_frac", "tab:purple", "saturated"),
        ("symmetric_frac", "tab:gray", "symmetric"),
    ):
        values = [getattr(s, key) for s in layers]
        if any(v is not None for v in values):
            ax.plot(
                x, [100 * v if v is not None else math.nan for v in values], "o-", ms=3, lw=1, color=color, label=label
            )
    ax.set_ylim(-3, 103)
    ax.set_xlim(0.5, len(x) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    style(
        ax,
        xlabel="layer (execution order)",
        ylabel="% of units (saturated: of outputs)",
        title="unit health",
        title_size=10,
        legend=True,
    )

    if sv is not None:
        ax = axes[3]
        flat = sv.flatten().double().clamp_min(1e-30)
        lo, hi = float(flat.min()), float(flat.max())
        if hi / lo > 20:
            import numpy as np

            bins = np.logspace(math.log10(lo), math.log10(hi), 40)
            ax.set_xscale("log")
        else:
            bins = 40
        ax.hist(flat.numpy(), bins=bins, color="tab:green", alpha=0.8)
        ax.axvline(1.0, color="black", lw=0.8, ls=":")
        title = f"Jacobian spectrum ({diagnosis.jacobian_method}, {sv.shape[0]} samples)"
        style(ax, xlabel="singular value of ∂y/∂x", title=title, title_size=10)

    flags = sorted({f.kind for f in diagnosis.flags})
    heading = (title + " — " if title else "") + ("flags: " + ", ".join(flags) if flags else "no flags")
    return save(fig, path, title=heading, title_size=11)
