"""Study ``lr-transfer``: does μP keep the optimal learning rate fixed as width grows?

Claim (Yang et al. 2022, Tensor Programs V, Fig. 1): under standard parametrization the optimal
learning rate drifts with width; under μP it stays put, so it can be tuned on a small model.

Design: MLPs (``depth`` hidden layers, no biases) on digits (flattened 8x8, 1437 train), at each
width x a log2-spaced Adam learning-rate grid x seeds, trained together on the ensemble engine
(members differ in lr). SP: the auto policy (He for ReLU layers, Xavier readout), one global lr.
μP: ``auto+mup`` at ``base_width`` = the smallest width, Table 3's per-layer Adam rates carried
by forward multipliers (``initlab.mup.models``). The score of a (width, lr) is the final-epoch
training loss, mean over seeds (a diverged member counts as +inf). Optimal lr per width: the
grid's argmin; its 95% interval: percentiles of the argmin over 1000 bootstrap resamples of
the seeds (fixed generator). Drift: log2(optimal lr at the smallest width / at the largest).
Verdict: supported when |drift| <= 1 (one grid step) under μP while SP drifts more; partly
when neither drifts by more than one step (nothing to fix at these widths); not supported otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.settings import int_list, seed_list

CLAIM = (
    "μP keeps the optimal learning rate fixed as width grows, where standard parametrization "
    "lets it drift (Yang et al. 2022, Tensor Programs V)"
)
DEFAULTS: dict[str, Any] = {
    "widths": [64, 128, 256, 512, 1024],
    "lrs": [2.0**-k for k in range(14, 3, -1)],
    "seeds": 3,
    "depth": 2,
    "epochs": 3,
    "batch_size": 64,
    "limit_train": 1437,
    "bootstrap": 1000,
}
QUICK: dict[str, Any] = {
    "widths": [16, 32, 64],
    "lrs": [2.0**-k for k in (9, 7, 5, 3)],
    "seeds": 2,
    "epochs": 1,
    "limit_train": 256,
    "bootstrap": 200,
}
PARAMETRIZATIONS = ("sp", "mup")


def optimal_lr(lrs: list[float], losses: dict[float, list[float]]) -> float:
    """The lr of the lowest mean loss (ties: the smaller lr); a non-finite loss counts as +inf."""

    def score(lr: float) -> float:
        vals = [v if math.isfinite(v) else math.inf for v in losses[lr]]
        return sum(vals) / len(vals) if all(math.isfinite(v) for v in vals) else math.inf

    return min(sorted(lrs), key=score)


def bootstrap_optimum(
    lrs: list[float], losses: dict[float, list[float]], n: int, generator: torch.Generator
) -> tuple[float, float]:
    """95% percentile interval of the optimal lr over resamples of the seeds (same seeds for every lr)."""
    k = len(next(iter(losses.values())))
    picks = []
    for _ in range(n):
        idx = torch.randint(0, k, (k,), generator=generator).tolist()
        picks.append(optimal_lr(lrs, {lr: [losses[lr][i] for i in idx] for lr in lrs}))
    picks.sort()
    return picks[int(0.025 * (n - 1))], picks[math.ceil(0.975 * (n - 1))]


def drift(opt: dict[int, float]) -> float:
    """log2(optimal lr at the smallest width / at the largest): > 0 when the optimum falls with width."""
    widths = sorted(opt)
    return math.log2(opt[widths[0]] / opt[widths[-1]])


def judge(drift_sp: float, drift_mup: float) -> str:
    if abs(drift_mup) <= 1.0 < abs(drift_sp):
        return "supported"
    if abs(drift_mup) <= 1.0 and abs(drift_sp) <= 1.0:
        return "partly"
    return "not supported"


def _train_grid(
    parametrization: str, width: int, s: dict[str, Any], data: Any, seeds: tuple[int, ...], base_width: int
) -> dict[float, list[float]]:
    from initlab.engine import Member, TrainConfig, train
    from initlab.mup.models import MupMLP, adam_multipliers, initialize_abc

    n_in, classes, depth = data.x_train[0].numel(), int(data.y_train.max()) + 1, s["depth"]
    mults = adam_multipliers(depth + 1, width, base_width) if parametrization == "mup" else None
    policy = "auto+mup" if parametrization == "mup" else "auto"

    def factory() -> MupMLP:
        return MupMLP(n_in, width, classes, depth, multipliers=mults)

    def init(model: Any, seed: int) -> None:  # a MupMLP (factory)
        initialize_abc(model, policy, seed, base_width if parametrization == "mup" else None)

    init.__qualname__ = f"{parametrization}_w{width}"
    members = [Member(init, seed, lr=lr) for lr in s["lrs"] for seed in seeds]
    config = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], optimizer="adam", lr=s["lrs"][0])
    result = train(factory, members, data, config)
    losses: dict[float, list[float]] = {lr: [] for lr in s["lrs"]}
    for m in result.members:
        final = m.records[-1].train_loss if m.records else math.nan
        losses[m.member.lr].append(final if m.status != "diverged" else math.inf)
    return losses


def run_grid(s: dict[str, Any], progress: bool = False) -> dict[str, Any]:
    """Train every (parametrization, width, lr, seed); per parametrization the losses and optima."""
    from initlab.data import load
    from initlab.seeding import derive_generator

    data = load("digits", flatten=True, limit_train=s["limit_train"])
    seeds = seed_list(s["seeds"])
    widths = int_list("widths", s["widths"], 1)
    lrs = sorted(float(v) for v in s["lrs"])
    s = {**s, "lrs": lrs}
    out: dict[str, Any] = {}
    for par in PARAMETRIZATIONS:
        rows: dict[int, dict[str, Any]] = {}
        for width in widths:
            losses = _train_grid(par, width, s, data, seeds, widths[0])
            g = derive_generator(0, "lr-transfer", par, str(width))
            lo, hi = bootstrap_optimum(lrs, losses, s["bootstrap"], g)
            rows[width] = {"losses": losses, "opt": optimal_lr(lrs, losses), "ci": (lo, hi)}
            if progress:
                print(f"  {par} width {width}: optimal lr {rows[width]['opt']:.3g} [{lo:.3g}, {hi:.3g}]")
        out[par] = {"rows": rows, "drift": drift({w: r["opt"] for w, r in rows.items()})}
    return out


def plot(grid: dict[str, Any], path) -> None:
    """Final training loss against lr, one curve per width; SP and μP side by side."""
    from initlab.plotting import new_figure, save, style

    fig, axes = new_figure(2, size=(10, 4), sharey=True)
    for ax, par in zip(axes, PARAMETRIZATIONS):
        for width, row in grid[par]["rows"].items():
            lrs = sorted(row["losses"])
            means = [sum(row["losses"][lr]) / len(row["losses"][lr]) for lr in lrs]
            ax.plot(lrs, [m if math.isfinite(m) else float("nan") for m in means], marker="o", label=f"width {width}")
            ax.axvline(row["opt"], color=ax.lines[-1].get_color(), alpha=0.3, lw=1)
        ax.set_xscale("log", base=2)
        name = "standard (He, one lr)" if par == "sp" else "μP (auto+mup)"
        style(
            ax, xlabel="Adam learning rate", title=f"{name}: drift {grid[par]['drift']:+.1f} log2", logy=True, grid=None
        )
    axes[0].set_ylabel("final training loss (mean over seeds)")
    style(axes[1], grid=None, legend=True)
    save(fig, path)


@register("lr-transfer", CLAIM)
def lr_transfer(ctx: StudyContext) -> StudyResult:
    """Optimal Adam lr per width under SP and μP; drift over the width range (module docstring)."""
    s = ctx.setting({**DEFAULTS, **QUICK}, full=DEFAULTS)
    grid = run_grid(s, progress=ctx.progress)
    d_sp, d_mup = grid["sp"]["drift"], grid["mup"]["drift"]
    verdict = judge(d_sp, d_mup)
    rows = []
    for par in PARAMETRIZATIONS:
        for width, row in grid[par]["rows"].items():
            lo, hi = row["ci"]
            rows.append(
                [
                    par,
                    str(width),
                    f"{row['opt']:.3g}",
                    f"[{lo:.3g}, {hi:.3g}]",
                    f"{min(sum(v) / len(v) for v in row['losses'].values()):.4f}",
                ]
            )
    figure = ctx.out / "lr_transfer.png"
    plot(grid, figure)
    widths = sorted(grid["sp"]["rows"])
    summary = (
        f"Optimal Adam lr drift over widths {widths[0]}..{widths[-1]}: SP {d_sp:+.1f} log2 "
        f"({2 ** abs(d_sp):.3g}x), μP {d_mup:+.1f} log2 ({2 ** abs(d_mup):.3g}x); grid step = 1 log2."
    )
    evidence = {
        par: {
            "drift_log2": grid[par]["drift"],
            "optimal_lr": {str(w): r["opt"] for w, r in grid[par]["rows"].items()},
            "optimal_lr_ci": {str(w): list(r["ci"]) for w, r in grid[par]["rows"].items()},
        }
        for par in PARAMETRIZATIONS
    }
    small, large = grid["mup"]["rows"][widths[0]]["ci"], grid["mup"]["rows"][widths[-1]]["ci"]
    drift_ci = (math.log2(small[0] / large[1]), math.log2(small[1] / large[0]))  # from the two intervals' ends
    return StudyResult(
        study="lr-transfer",
        claim=CLAIM,
        verdict=verdict,
        effect=d_mup,
        ci=drift_ci,
        effect_label="μP drift of the optimal lr, log2 (smallest / largest width)",
        summary=summary,
        evidence=evidence,
        tables=[
            (
                "Optimal learning rate per width (95% bootstrap interval over seeds)",
                ["parametrization", "width", "optimal lr", "95% interval", "best loss"],
                rows,
            )
        ],
        figures=[figure],
        settings=dict(s),
    )
