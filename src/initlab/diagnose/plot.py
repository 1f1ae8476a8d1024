"""The signal-propagation plot (matplotlib, imported here only; Agg canvas, no display needed)."""

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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    layers = diagnosis.layers
    x = list(range(1, len(layers) + 1))
    preds = {p.name: p for p in diagnosis.predicted or []}
    sv = diagnosis.jacobian_singular_values
    panels = 3 if sv is None else 4
    fig = Figure(figsize=(4.2 * panels, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)

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
        ax.set_xlabel("layer (execution order)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)

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
    ax.set_xlabel("layer (execution order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("% of units (saturated: of outputs)")
    ax.set_title("unit health", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

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
        ax.set_xlabel("singular value of ∂y/∂x")
        ax.set_title(f"Jacobian spectrum ({diagnosis.jacobian_method}, {sv.shape[0]} samples)", fontsize=10)
        ax.grid(alpha=0.3)

    flags = sorted({f.kind for f in diagnosis.flags})
    fig.suptitle(
        (title + " — " if title else "") + ("flags: " + ", ".join(flags) if flags else "no flags"), fontsize=11
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
