"""The ``per-layer`` study's figure: auto against the best uniform scheme and the best control per
setting (paired differences with their CIs, the equivalence margin shaded), and tuned accuracy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from initlab.studies.per_layer import Measured, Pick
from initlab.sweep.config import ZEROED_BRANCH_ENDS


def figure(path: Path, deep: int, order: list[str], m: Measured, picks: Mapping[str, Pick], margin: float) -> Path:
    """Left: auto − best uniform and auto − best control per setting with CIs, the margin shaded
    (symlog axis: the gaps span points to tens of points); right: tuned accuracy per setting."""
    from initlab.plotting import new_figure, palette, save, style

    fig, (left, right) = new_figure(2, size=(12, 4.4), gridspec_kw={"width_ratios": [1, 1]})
    labels = list(picks)
    left.axhspan(-100 * margin, 100 * margin, color="0.85", label=f"±{100 * margin:g} pts margin")
    left.axhline(0, color="black", lw=0.8)
    for k, (what, marker) in enumerate((("best uniform", "o"), ("best control", "s"))):
        for i, label in enumerate(labels):
            x = picks[label].best_uniform if k == 0 else picks[label].best_control
            r = m.rows[label][deep].get(x) if x else None
            if x is None or r is None or r.auto_minus is None or r.auto_minus_ci is None:
                continue
            y, (lo, hi), at = 100 * r.auto_minus, r.auto_minus_ci, i + (k - 0.5) * 0.4
            bar = dict(fmt=marker, color=f"C{k}", capsize=3, label=f"auto − {what}" if i == 0 else None)
            left.errorbar([at], [y], yerr=[[y - 100 * lo], [100 * hi - y]], **bar)
            short = x.replace("_normal", "").replace("_uniform", "").replace(ZEROED_BRANCH_ENDS, "+0 ends")
            left.annotate(short, (at, 100 * lo), xytext=(0, -9), textcoords="offset points", ha="center", fontsize=7)
    left.set_yscale("symlog", linthresh=1.0)
    span = max([2.0] + [abs(v) for line in left.lines for v in line.get_ydata()])
    ticks = [v for v in (-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50) if abs(v) <= 1.5 * span]
    left.set_yticks(ticks, [f"{t:+d}" if t else "0" for t in ticks])
    left.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    title = f"{deep} blocks: above the band, auto is better"
    legend = {"fontsize": 7, "loc": "upper center", "ncol": 3}
    left.set_ylim(-1.6 * span, 8 * span)  # room above the bars for the legend
    style(left, ylabel="auto − scheme, test accuracy pts (symlog)", title=title, grid="y", legend=legend)
    colors = palette(order)
    for k, x in enumerate(order):
        xs = [i + (k - (len(order) - 1) / 2) * (0.8 / len(order)) for i in range(len(labels))]
        ys = [100 * m.rows[label][deep][x].mean for label in labels]
        right.bar(xs, [y if math.isfinite(y) else 0 for y in ys], 0.8 / len(order), color=colors[x], label=x)
    right.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    right.set_ylim(0, 130)  # room above the bars for the legend
    style(
        right,
        ylabel="tuned test accuracy (%, mean over seeds)",
        title=f"{deep} blocks: accuracy per setting",
        grid="y",
        legend=legend,
    )
    return save(fig, path, title="per-layer: one scheme everywhere (with and without zeroed branch ends) vs auto")
