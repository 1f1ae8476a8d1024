"""Study ``normalization``: the tables, figure and summary of the judged measurements.

Kept apart from ``normalization`` (settings -> measure -> judge) so each stays a readable size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from initlab.studies.base import StudyContext, StudyResult, signed_points
from initlab.studies.grid import CommonSettings, Judgement, Setting
from initlab.studies.normalization import (
    CLAIM,
    MODEL,
    NAME,
    Contrast,
    SettingOutcome,
    matters_in,
    outcome_evidence,
)
from initlab.studies.settings import fmt_ci


def _pp(v: tuple[float, float, float]) -> str:
    """``4.3 [2.1, 6.0]``: a (value, lo, hi) accuracy statistic in points."""
    value, lo, hi = v
    return fmt_ci(100 * value, 100 * lo, 100 * hi, digits=1)


def _contrast_text(c: Contrast | None) -> str:
    if c is None:
        return "n/a (fewer than 2 schemes)"
    return f"{c.best} − {c.worst}: {signed_points(c.diff, c.ci[0], c.ci[1])}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _spread_rows(outcomes: Mapping[str, SettingOutcome], matters: float, by_setting: Mapping[str, str]) -> list:
    rows = []
    for label, o in outcomes.items():
        for i, (n, x) in enumerate(o.norms.items()):
            rows.append(
                [
                    label if i == 0 else "",
                    n,
                    _pp(x.std),
                    _pp(x.range),
                    _contrast_text(x.contrast),
                    _pp(x.std_clean),
                    _pp(x.range_clean),
                    _contrast_text(x.contrast_clean),
                    f"{_yes(matters_in(x.contrast, matters))} / {_yes(matters_in(x.contrast_clean, matters))}",
                    by_setting[label] if i == 0 else "",
                ]
            )
    return rows


def _accuracy_rows(outcomes: Mapping[str, SettingOutcome], schemes: list[str]) -> list:
    rows = []
    for label, o in outcomes.items():
        for n, x in o.norms.items():
            cells = []
            for sc in schemes:
                lr = x.lr.get(sc)
                mark = "*" if sc in o.degenerate else ""
                cells.append(f"{100 * x.accuracy[sc]:.1f}{mark} ({'fixed' if lr is None else f'{lr:g}'})")
            rows.append([label, n, *cells])
    return rows


def _figure(path: Path, outcomes: Mapping[str, SettingOutcome], norms: list[str], matters: float) -> Path:
    """Best − worst (paired, 95% CI) per setting and norm: every scheme (left), without the
    degenerate ones (right); the ``matters`` threshold dashed."""
    from initlab.plotting import new_figure, palette, save, style

    fig, axes = new_figure(2, size=(12, 4.4))
    labels = list(outcomes)
    colors = palette(norms)
    step = 0.8 / len(norms)
    for ax, clean, title in ((axes[0], False, "every scheme"), (axes[1], True, "without the degenerate schemes")):
        for j, n in enumerate(norms):
            for i, label in enumerate(labels):
                x = outcomes[label].norms[n]
                c = x.contrast_clean if clean else x.contrast
                if c is None or not math.isfinite(c.diff):
                    continue
                pos = i + (j - (len(norms) - 1) / 2) * step
                lo, hi = c.ci if all(math.isfinite(v) for v in c.ci) else (c.diff, c.diff)
                ax.errorbar(
                    [pos],
                    [100 * c.diff],
                    yerr=[[100 * (c.diff - lo)], [100 * (hi - c.diff)]],
                    fmt="o",
                    color=colors[n],
                    capsize=3,
                    label=f"norm: {n}" if i == 0 else None,
                )
        ax.axhline(100 * matters, color="black", lw=0.8, ls="--")
        # linear within ±5 pts, logarithmic above: spreads of 1 point stay readable beside spreads of 80
        ax.set_yscale("symlog", linthresh=5)
        ax.set_ylim(min(-5.0, ax.get_ylim()[0]), 100)  # a CI below −5 stays in view
        ticks = [-5, 0, 2, 5, 10, 20, 50, 100]
        ax.set_yticks(ticks, [str(v) for v in ticks])
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
        style(
            ax,
            ylabel="best − worst scheme, test acc. pts (95% CI)",
            title=title,
            grid="y",
            legend={"loc": "lower left"} if not clean else False,  # one legend: the colours are the same
        )
    title = f"normalization: does the scheme matter? (dashed: {100 * matters:g} pts)"
    return save(fig, path, title=title)


def present(
    ctx: StudyContext,
    s: dict[str, Any],
    common: CommonSettings,
    schemes: list[str],
    norms: list[str],
    outcomes: Mapping[str, SettingOutcome],
    judgement: Judgement,
    experiments: list[str],
    chance: float,
) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    matters = s["matters"]
    floor = s["degenerate"] * chance
    final = Setting(common.optimizers[0], common.budgets[-1]).label
    headline_norm = norms[1]
    head = outcomes[final].norms[headline_norm].contrast_clean or outcomes[final].norms[headline_norm].contrast
    effect = head.diff if head else math.nan
    lo, hi = head.ci if head else (math.nan, math.nan)
    per_setting = []
    for label, o in outcomes.items():
        ranges = ", ".join(
            f"{n} {100 * x.range_clean[0]:.1f}" if math.isfinite(x.range_clean[0]) else f"{n} n/a"
            for n, x in o.norms.items()
        )
        per_setting.append(
            f"{label}: {judgement.by_setting[label]} (degenerate: {', '.join(o.degenerate) or 'none'}; range of "
            f"means without them: {ranges} pts)"
        )
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    counts = ", ".join(
        f"{n} {sum(matters_in(o.norms[n].contrast_clean, matters) for o in outcomes.values())}/{len(outcomes)}"
        for n in norms
    )
    rates = "; ".join(f"{o} {'/'.join(f'{v:g}' for v in g)}" for o, g in common.lr_grids.items())
    summary = (
        f"{s['depth']}-layer {s['activation']} MLP on {common.dataset}, {len(schemes)} schemes, {len(common.seeds)} "
        f"seeds, lr tuned per scheme on validation ({rates}). A scheme is degenerate in a setting when its mean "
        f"validation accuracy is below {100 * floor:.0f}% under some norm. Per setting: "
        + "; ".join(per_setting)
        + f". Among the schemes that train, the choice matters (best − worst CI above {100 * matters:g} pts) in "
        + f"settings: {counts}."
        + flips
    )
    header_lr = "selected lr in brackets; * degenerate in that setting"
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=(
            f"test accuracy best − worst scheme (picked on validation), {headline_norm} norm, without the degenerate "
            f"schemes ({final}; paired bootstrap over seeds and test examples)"
        ),
        effect_unit="pp",
        summary=summary,
        evidence={
            "judgement": judgement.evidence(),
            "outcomes": {label: outcome_evidence(o) for label, o in outcomes.items()},
            "degenerate": {label: list(o.degenerate) for label, o in outcomes.items()},
            "degenerate_named": sorted({sc for o in outcomes.values() for sc in o.degenerate}),
            "degenerate_floor": floor,
            "matters_threshold": matters,
            "matters": {
                label: {
                    n: {
                        "all": matters_in(x.contrast, matters),
                        "without_degenerate": matters_in(x.contrast_clean, matters),
                    }
                    for n, x in o.norms.items()
                }
                for label, o in outcomes.items()
            },
            "schemes": schemes,
            "norms": norms,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
        },
        tables=[
            (
                "Spread between schemes per setting and norm, test accuracy pts (bootstrap 95% CI over seeds); best − "
                "worst picked on validation, paired bootstrap over seeds and test examples; matters: its CI above "
                f"{100 * matters:g} pts (every scheme / without the degenerate)",
                [
                    "setting",
                    "norm",
                    "std of means",
                    "range of means",
                    "best − worst",
                    "std w/o degenerate",
                    "range w/o degenerate",
                    "best − worst w/o degenerate",
                    "matters",
                    "verdict",
                ],
                _spread_rows(outcomes, matters, judgement.by_setting),
            ),
            (
                f"Tuned test accuracy % per setting and norm ({header_lr})",
                ["setting", "norm", *schemes],
                _accuracy_rows(outcomes, schemes),
            ),
        ],
        figures=[_figure(ctx.out / "normalization.png", outcomes, norms, matters)],
        experiments=experiments,
        settings={**s, "seeds": list(common.seeds), "schemes": schemes, "norms": norms, "model": MODEL},
    )


__all__ = ["present"]
