"""Plots for ``initlab compare`` (matplotlib, imported lazily, through ``initlab.plotting``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from initlab.article import claimed_mean
from initlab.plotting import new_figure, palette, save, seed_band, style


def plot_accuracy(runs: Sequence[Mapping], order: Sequence[str], path: Path, metric=None, claims: bool = True) -> Path:
    """Final test accuracy per scheme: box + every seed as a dot (× = diverged), and the
    article's unsourced claimed mean as a hollow diamond for comparison. With a ``metric`` other
    than accuracy (an MSE, a loss) the same plot shows its values, without the article's claims."""
    colors = palette(order)
    fig, (ax,) = new_figure(size=(max(6.0, 0.9 * len(order) + 2), 4.2))
    is_acc = metric is None or metric.name == "accuracy"
    key, scale = ("test_acc", 100) if is_acc else (metric.run_key, 1)
    data = [[scale * r[key] for r in runs if r["scheme"] == s and math.isfinite(r[key])] for s in order]
    ax.boxplot(
        data,
        positions=range(len(order)),
        widths=0.55,
        showfliers=False,
        medianprops={"color": "black"},
        boxprops={"color": "0.5"},
        whiskerprops={"color": "0.5"},
        capprops={"color": "0.5"},
    )
    for i, s in enumerate(order):
        pts = [r for r in runs if r["scheme"] == s]
        for j, r in enumerate(sorted(pts, key=lambda r: r["seed"])):
            x = i + (j - (len(pts) - 1) / 2) * (0.5 / max(len(pts), 1))
            y = scale * r[key] if math.isfinite(r[key]) else (0.0 if is_acc else math.nan)
            ax.scatter(
                x, y, color=colors[s], s=18, zorder=3, marker="x" if r["status"] == "diverged" else "o", alpha=0.85
            )
        claim = claimed_mean(s) if is_acc and claims else None
        if claim is not None:
            ax.scatter(
                i,
                100 * claim,
                marker="D",
                facecolors="none",
                edgecolors="black",
                s=40,
                zorder=4,
                label="article's claimed mean (unsourced)" if i == 0 or not ax.get_legend_handles_labels()[0] else None,
            )
    ax.set_xticks(range(len(order)), order, rotation=35, ha="right")
    if is_acc:
        ax.set_ylabel("final test accuracy (%)")
        ax.set_ylim(-2, 102)
    else:
        ax.set_ylabel(f"final test {metric.name} ({metric.unit}; lower is better)")
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"Test {'accuracy' if is_acc else metric.name} per scheme (dots: seeds, × diverged)")
    return save(fig, path)


def _mean_band(epochs: Sequence[Mapping], scheme: str, key: str):
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for e in epochs:
        if e["scheme"] == scheme and e[key] is not None and math.isfinite(e[key]):
            by_epoch[e["epoch"]].append(e[key])
    xs = sorted(by_epoch)
    mean = [sum(by_epoch[x]) / len(by_epoch[x]) for x in xs]
    lo = [min(by_epoch[x]) for x in xs]
    hi = [max(by_epoch[x]) for x in xs]
    return xs, mean, lo, hi


def plot_curves(epochs: Sequence[Mapping], order: Sequence[str], path: Path, metric=None) -> Path:
    """Learning curves: test accuracy (or ``metric``) and train loss per epoch, mean over seeds
    with a min–max band."""
    colors = palette(order)
    fig, (ax_acc, ax_loss) = new_figure(2, size=(11, 4.2))
    is_acc = metric is None or metric.name == "accuracy"
    key, scale = ("test_acc", 100) if is_acc else (metric.run_key, 1)
    for s in order:
        xs, mean, lo, hi = _mean_band(epochs, s, key)
        if xs:
            scaled = ([scale * v for v in vs] for vs in (mean, lo, hi))
            seed_band(ax_acc, xs, *scaled, color=colors[s], label=s)
        xs, mean, lo, hi = _mean_band(epochs, s, "train_loss")
        if xs:
            seed_band(ax_loss, xs, mean, lo, hi, color=colors[s])
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)" if is_acc else f"test {metric.name} ({metric.unit})")
    ax_acc.grid(alpha=0.3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss (mean over the epoch)")
    ax_loss.set_yscale("log")
    ax_loss.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, ncol=2)
    return save(fig, path, title="Learning curves (line: mean over seeds; band: min–max)")


def plot_convergence(
    steps: Mapping[str, Sequence[int | None]],
    order: Sequence[str],
    target: float,
    total_steps: int,
    path: Path,
    metric=None,
) -> Path:
    """Convergence speed: the fraction of seeds that reached the target accuracy by each step."""
    colors = palette(order)
    fig, (ax,) = new_figure(size=(7, 4.2))
    for s in order:
        runs = steps.get(s, [])
        if not runs:
            continue
        reached = sorted(x for x in runs if x is not None)
        xs = [0] + [x for x in reached for _ in (0, 1)] + [total_steps]
        ys = [0.0]
        for k, _ in enumerate(reached, 1):
            ys += [ys[-1], k / len(runs)]
        ys.append(ys[-1])
        ax.plot(xs, ys, color=colors[s], label=f"{s} ({len(reached)}/{len(runs)})", lw=1.6)
    ax.set_xlabel("training step")
    if metric is None or metric.name == "accuracy":
        ax.set_ylabel(f"fraction of seeds at ≥ {100 * target:.0f}% test accuracy")
    else:
        ax.set_ylabel(f"fraction of seeds at test {metric.name} ≤ {target:g}")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Convergence speed (evaluated at epoch ends)")
    return save(fig, path)


def plot_signal(signal: Mapping[str, Sequence[Mapping]], order: Sequence[str], path: Path) -> Path:
    """Signal at init (seed 0): per-layer output second moment and loss-gradient second moment.

    Exact zeros (zero or constant init) cannot sit on a log axis: they are drawn as ▼ on the
    bottom edge of the panel.
    """
    colors = palette(order)
    fig, (ax_f, ax_b) = new_figure(2, size=(11, 4.2))
    names: list[str] = []
    for ax, key in ((ax_f, "out_var"), (ax_b, "grad_var")):
        values = [
            float(layer[key])
            for s in order
            for layer in signal.get(s, [])
            if layer.get(key) is not None and math.isfinite(layer[key]) and layer[key] > 0
        ]
        floor = min(values) / 10 if values else 1e-12
        for s in order:
            layers = signal.get(s)
            if not layers:
                continue
            names = (
                names
                if len(names) >= len(layers)
                else [layer.get("name", str(i + 1)) for i, layer in enumerate(layers)]
            )
            xs = list(range(1, len(layers) + 1))
            ys = [layer.get(key) for layer in layers]
            shown = [y if y is not None and math.isfinite(y) and y > 0 else float("nan") for y in ys]
            ax.plot(xs, shown, marker="o", ms=3, color=colors[s], label=s, lw=1.4)
            zero_x = [x for x, y in zip(xs, ys) if y == 0]
            if zero_x:
                ax.scatter(zero_x, [floor] * len(zero_x), marker="v", color=colors[s], s=30, zorder=3)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor / 2)
    for ax, title in ((ax_f, "forward: E[output²] per layer"), (ax_b, "backward: E[(∂loss/∂output)²] per layer")):
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_f.legend(fontsize=7, ncol=2)
    return save(fig, path, title="Signal at initialization (seed 0, one batch; ▼ = exactly 0)")


def plot_sensitivity(runs: Sequence, order: Sequence[str], epoch: int, path: Path) -> Path:
    """Validation accuracy against learning rate after ``epoch``: one line per scheme (mean over
    seeds), a band from the worst to the best seed, the selected rate circled. ``runs`` are
    ``initlab.report.analysis.Run``; a diverged run counts as 0."""
    import numpy as np

    colors = palette(order)
    fig, (ax,) = new_figure(size=(7.5, 4.5))
    for s in order:
        by_lr: dict[float, list[float]] = defaultdict(list)
        for r in runs:
            if r.scheme == s and r.lr is not None:
                by_lr[r.lr].append(100 * r.val_at(epoch))
        if not by_lr:
            continue
        rates = sorted(by_lr)
        mean = [float(np.nanmean(by_lr[lr])) for lr in rates]
        lo, hi = [min(by_lr[lr]) for lr in rates], [max(by_lr[lr]) for lr in rates]
        seed_band(ax, rates, mean, lo, hi, color=colors[s], label=s, marker="o", alpha=0.12)
        best = int(np.nanargmax(mean)) if any(math.isfinite(m) for m in mean) else None
        if best is not None:
            ax.scatter([rates[best]], [mean[best]], s=90, facecolors="none", edgecolors=colors[s], zorder=4)
    style(
        ax,
        xlabel="learning rate (log scale)",
        ylabel=f"validation accuracy after epoch {epoch} (%)",
        title="Sensitivity to the learning rate (mean over seeds, band: min–max; ○ selected)",
        logx=True,
        legend={"fontsize": 7, "ncol": 2, "loc": "lower left"},
    )
    return save(fig, path)
