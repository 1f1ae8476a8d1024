"""Study ``scale``, presented: tables, figure, summary and evidence of the judged measurements.

The experiment, the grid and the judge are documented in ``initlab.studies.scale``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from initlab.studies.base import StudyContext, StudyResult, mean_ci, signed_points
from initlab.studies.grid import Judgement
from initlab.studies.scale import (
    CLAIM,
    MIN_UNSTABLE_SHARE,
    NAME,
    Halves,
    Measured,
    Rate,
    RateSetting,
    ScaleSettings,
    factor_label,
)
from initlab.studies.settings import finite_mean


def _geomean(values: list[float]) -> float:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in finite) / len(finite)) if finite else math.nan


def _factors(fs: list[float]) -> str:
    return ", ".join(f"×{factor_label(f)}" for f in fs)


def _evidence(grid: ScaleSettings, m: Measured, rows, by_setting: dict[RateSetting, Halves], judgement) -> dict:
    fl = factor_label
    per_setting = {}
    for st, h in by_setting.items():
        per_setting[st.label] = {
            "optimizer": st.rate.optimizer,
            "lr": st.rate.lr,
            "budget": st.budget,
            "verdict": judgement.by_setting[st.label],
            "half_a_faster_start": {
                "holds": h.a,
                "significant": [fl(f) for f in h.faster],
                "tests": {fl(f): t for f, t in h.tests_a.items()},
            },
            "half_b_unstable_later": {
                "holds": h.b,
                "unstable_after_good_start": [fl(f) for f in h.after_good_start],
                "late_unstable_seeds": {fl(f): n for f, n in h.late.items()},
                "isolated_below_share": [fl(f) for f in h.isolated],
                "bad_from_the_start": [fl(f) for f in h.bad_from_start],
                "significantly_worse": [fl(f) for f in h.worse],
                "tests": {fl(f): t for f, t in h.tests_b.items()},
            },
            "per_factor": {fl(f): r for f, r in rows[st].items()},
        }
    first = grid.settings[0]
    return {
        "judgement": judgement.evidence(),
        "fixed_learning_rates": {o: list(r) for o, r in grid.common.lr_grids.items()},
        "lr_tuned": False,
        "budgets": list(grid.common.budgets),
        "seeds": list(grid.common.seeds),
        "factors": [fl(f) for f in grid.factors],
        "schemes": {fl(f): m.schemes[f] for f in grid.factors},
        "grad_norm_at_init": {fl(f): m.grad[f] for f in grid.factors},
        "early_epoch": m.early,
        "early_step": rows[first][1.0]["early_step"],
        "per_setting": per_setting,
        "chance": m.chance,
    }


def _rate_table(rate: Rate, grid: ScaleSettings, m: Measured, rows) -> tuple[str, list[str], list[list[str]]]:
    budgets = grid.common.budgets
    n = len(grid.common.seeds)
    first = rows[RateSetting(rate, budgets[0])]
    out = []
    for f in grid.factors:
        r0 = first[f]
        cells = [factor_label(f), f"{_geomean(m.grad[f]):.3g}"]
        cells += [f"{finite_mean(r0['early_loss']):.3g}", f"{100 * finite_mean(r0['early_acc']):.1f}"]
        for b in budgets:
            r = rows[RateSetting(rate, b)][f]
            mean, lo, hi = mean_ci(r["final_acc"])
            ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if n > 1 and math.isfinite(lo) else ""
            cells += [f"{100 * mean:.1f}{ci}", f"{100 * finite_mean(r['drop_from_peak']):.1f}"]
        last = rows[RateSetting(rate, budgets[-1])][f]
        cells += [f"{last['diverged']}/{n}", f"{last['failed']}/{n}"]
        out.append(cells)
    step = first[1.0]["early_step"]
    header = ["f", "|grad| at init", f"test loss @ step {step}", f"test acc % @ step {step}"]
    for b in budgets:
        header += [f"acc % @ {b} ep (95% CI)", f"best→{b} ep drop (pts)"]
    header += [f"diverged by {budgets[-1]} ep", "failed"]
    return f"{rate.label} (fixed): per factor (std = f x He), {n} seeds", header, out


def _halves_table(grid: ScaleSettings, by_setting: dict[RateSetting, Halves], judgement):
    out = []
    n = len(grid.common.seeds)
    for st, h in by_setting.items():
        for f, ta in h.tests_a.items():
            tb = h.tests_b[f]
            out.append(
                [
                    st.label,
                    factor_label(f),
                    f"{ta['mean']:+.3g} [{ta['ci'][0]:+.3g}, {ta['ci'][1]:+.3g}]",
                    f"{ta['p_holm']:.2g}",
                    f"{h.late[f]}/{n} (He {h.late[1.0]})",
                    signed_points(tb["mean"], *tb["ci"]),
                    f"{tb['p_holm']:.2g}",
                    judgement.by_setting[st.label],
                ]
            )
    title = (
        "The two halves per setting, vs He (f = 1), paired by seed, Holm-corrected over the factors of a setting: "
        "A = early test loss He − f (> 0: f starts faster); B = seeds unstable after a good start (a drop of more "
        "than 2 pts from the best epoch, or a divergence, after the early step and by the budget; B holds at f "
        "when at least half the seeds are, and more than under He), and the accuracy at the budget He − f (pts; "
        "> 0: f ends worse)"
    )
    header = ["setting", "f", "A: Δ early loss (95% CI)", "A: p Holm", "B: unstable seeds", "Δ acc pts (95% CI)"]
    return title, header + ["Δ acc: p Holm", "setting verdict"], out


def _summary(grid: ScaleSettings, m: Measured, by_setting: dict[RateSetting, Halves], judgement: Judgement, best, step):
    g = m.grad
    lo, hi = min(grid.factors), max(grid.factors)
    text = (
        f"Gradient norm at init grows from {_geomean(g[lo]):.2g} (f={factor_label(lo)}) through "
        f"{_geomean(g[1.0]):.2g} (He) to {_geomean(g[hi]):.2g} (f={factor_label(hi)}). Fixed learning rates "
        f"(not tuned: tuning would select away the instability), {len(by_setting)} settings. "
    )
    a_holds = [st.label for st, h in by_setting.items() if h.a]
    b_holds = [f"{st.label} ({_factors(h.after_good_start)})" for st, h in by_setting.items() if h.b]
    bad = [f"{st.label} ({_factors(h.bad_from_start)})" for st, h in by_setting.items() if h.bad_from_start]
    text += "A (faster start): " + (
        "holds at " + "; ".join(a_holds)
        if a_holds
        else "no factor > 1 has a significantly lower early loss than He in any setting"
    )
    if best is not None:
        st, f, t = best
        text += f"; best gain {t['mean']:+.3g} at ×{factor_label(f)} ({st.rate.label}, step {step})"
    text += ". B (unstable later, a drop after a good start): " + (
        "holds at " + "; ".join(b_holds) if b_holds else "holds in no setting"
    )
    isolated = [f"{st.label} ({_factors(h.isolated)})" for st, h in by_setting.items() if h.isolated]
    if isolated:
        text += "; more unstable seeds than He but fewer than half (noise, not counted): " + "; ".join(isolated)
    if bad:
        text += "; bad from the start instead (not 'later'): " + "; ".join(bad)
    text += ". Verdict per setting: " + "; ".join(f"{k}: {v}" for k, v in judgement.by_setting.items()) + "."
    if judgement.flips:
        text += f" It flips in: {', '.join(judgement.flips)}."
    return text


def _plot(path: Path, grid: ScaleSettings, m: Measured, rows, by_setting: dict[RateSetting, Halves]) -> Path:
    from initlab.plotting import new_figure, palette, save, style

    fig, axes = new_figure(2, 2, size=(11, 7.5))
    factors = list(grid.factors)
    final = grid.common.budgets[-1]
    axis = "factor f (std = f x He)"
    axes[0].plot(factors, [_geomean(m.grad[f]) for f in factors], "o-", color="black")
    style(
        axes[0],
        xlabel=axis,
        ylabel="gradient norm at init",
        title="Gradient norm at init (geomean over seeds)",
        logy=True,
    )
    colors = palette([r.label for r in grid.rates])
    n = len(grid.common.seeds)
    for rate in grid.rates:
        r = rows[RateSetting(rate, final)]
        c = colors[rate.label]
        h = by_setting[RateSetting(rate, final)]
        axes[1].plot(factors, [finite_mean(r[f]["early_loss"]) for f in factors], "o-", color=c, label=rate.label)
        axes[2].plot(factors, [100 * finite_mean(r[f]["final_acc"]) for f in factors], "o-", color=c, label=rate.label)
        broken = [100 * (r[f]["diverged"] + r[f]["failed"]) / n for f in factors]
        axes[3].plot(factors, broken, "o-", color=c, label=f"{rate.label}: diverged/failed")
        axes[3].plot(
            factors, [100 * h.late[f] / n for f in factors], "s--", color=c, label=f"{rate.label}: unstable later"
        )
    step = rows[grid.settings[0]][1.0]["early_step"]
    panels = (
        (axes[1], f"Test loss early in training (step {step})", "test loss (mean over seeds)", True),
        (axes[2], f"Test accuracy after {final} epochs", "test accuracy (%)", False),
        (
            axes[3],
            f"Seeds by {final} epochs: diverged/failed (—), unstable after a good start (--)",
            "% of seeds",
            False,
        ),
    )
    for ax, title, ylabel, logy in panels:
        style(ax, xlabel=axis, ylabel=ylabel, title=title, logy=logy, legend={"fontsize": 7})
    axes[2].set_ylim(-2, 102)
    axes[3].set_ylim(-2, 102)
    axes[3].axhline(100 * MIN_UNSTABLE_SHARE, color="0.6", ls=":", lw=1)  # half B's share of seeds
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.axvline(1.0, color="0.6", ls="--", lw=1)
    return save(fig, path, title="scale: He's std times f, fixed learning rates (SGD momentum 0.9, Adam)")


def present(ctx: StudyContext, s: dict[str, Any], grid: ScaleSettings, m: Measured, rows, by_setting, judgement):
    """Tables, figure and summary of the judged measurements."""
    candidates = [(st, f, t) for st, h in by_setting.items() for f, t in h.tests_a.items() if math.isfinite(t["mean"])]
    best = max(candidates, key=lambda x: x[2]["mean"]) if candidates else None
    if best is not None:
        st, f, t = best
        effect, ci = t["mean"], (t["ci"][0], t["ci"][1])
        label = f"early test loss He − {factor_label(f)}×He ({st.rate.label}, step {rows[st][1.0]['early_step']})"
    else:
        effect, ci, label = math.nan, (math.nan, math.nan), "early test loss He − f×He"
    tables = [_rate_table(rate, grid, m, rows) for rate in grid.rates]
    tables.append(_halves_table(grid, by_setting, judgement))
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=effect,
        ci=ci,
        effect_label=label,
        summary=_summary(grid, m, by_setting, judgement, best, rows[grid.settings[0]][1.0]["early_step"]),
        evidence=_evidence(grid, m, rows, by_setting, judgement),
        tables=tables,
        figures=[_plot(ctx.out / "scale.png", grid, m, rows, by_setting)],
        experiments=m.experiments,
        settings={**s, "seeds": list(grid.common.seeds), "budgets": list(grid.common.budgets)},
    )
