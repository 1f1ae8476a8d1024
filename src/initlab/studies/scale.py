"""Study ``scale``: do large initial weights speed up the start of training and destabilise it later?

The experiment
--------------
He's normal initialization scaled by a factor ``f``: weights ``W ~ N(0, f^2 * 2 / fan_in)``,
the scheme ``variance_scaling(scale=2 f^2, mode=fan_in, distribution=normal)`` (``f = 1`` is
``he_normal``), for ``f`` in {1/16, 1/8, 1/4, 1/2, 1, 2, 4, 8, 16}. Default model and data: a
2 x 128 ReLU MLP on digits (1437 training images), SGD with momentum 0.9, batch 32, 20 epochs,
5 seeds, biases zero; the sweep runs at two learning rates (0.005 and 0.05), one stored
comparison per learning rate, because whether "large weights are faster" can hinge on the
step size. Per factor:

- **gradient norm at init**: ``||d L / d theta||_2`` over all parameters, ``L`` the mean
  cross-entropy of the first ``grad_batch`` (256) training samples, per seed;
- **divergence**: runs whose loss or gradient turned NaN/inf (the engine's ``diverged``); also
  **failed** runs, whose final test accuracy is below twice chance (``2 / classes``): a ReLU net
  whose units all died trains on without NaNs but learns nothing;
- **early loss**: the test loss at the end of the epoch whose step count is nearest to
  ``early_steps`` (100; on digits with batch 32: epoch 2, step 90);
- **final accuracy**: test accuracy after the last epoch, and the drop from the run's best
  epoch to its last one.

The article's claim has two halves, tested separately with paired t-tests across seeds (seed
``s`` fixes the data order for every factor) and Holm's correction over all ``(lr, f > 1)``
pairs of each half:

- **A (faster start)**: for some ``f > 1`` and learning rate, the early test loss of He
  (``f = 1``) minus that of ``f`` is > 0 with Holm-adjusted p < 0.05 (pairs where a loss is
  not finite are left out);
- **B (unstable later)**: for some ``f > 1`` and learning rate, more seeds than under He are
  *unstable after a good start*: early test accuracy at least He's mean early accuracy minus
  ``GOOD_START_SLACK`` (5 points), then a drop of more than ``LATE_DROP`` (2 points) from the
  run's best epoch to its last, or a divergence after the early step (``unstable_later``, pure,
  tested on made-up runs). A run that is bad from the start (dead units, saturated logits) is
  not "unstable later": it is reported apart, as are the paired final-accuracy tests.

Verdict: ``supported`` if both halves hold, ``partly`` if one does, ``not supported`` if
neither. Effect: half A's largest mean early-loss gain over He (``loss(He) - loss(f)``) among
``f > 1`` and learning rates, with its Student t 95% CI over seeds; negative means the larger
weights started *slower*.

Source: the article's misconceptions section ("initializing weights to very large values will
speed up the learning process ... they can also lead to unstable behavior later on"); He et
al. (2015) for the scale that preserves the signal in ReLU nets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.settings import finite_mean, paired_effect

CLAIM = (
    '"While it is true that larger initial weights can result in quicker convergence during the initial phase of '
    'training, they can also lead to unstable behavior later on. Large weights can cause the network to diverge."'
)

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "width": 128,
    "depth": 2,
    "activation": "relu",
    "factors": [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16],  # multiples of He's standard deviation
    "lrs": [0.005, 0.05],  # SGD learning rates, momentum 0.9; one comparison each
    "epochs": 20,
    "seeds": 5,
    "batch_size": 32,
    "early_steps": 100,  # "the initial phase": the epoch end nearest to this step
    "grad_batch": 256,  # training samples for the gradient norm at init
}
FULL: dict[str, Any] = {"dataset": "fashion-mnist", "limit_train": 10000, "epochs": 10}
ALPHA = 0.05


def scheme_for(factor: float) -> str:
    """The canonical scheme spec of He's normal init with its standard deviation times ``factor``."""
    from initlab.schemes import canonical_spec

    return canonical_spec(f"variance_scaling(scale={2 * factor * factor!r}, mode=fan_in, distribution=normal)")


def factor_label(factor: float) -> str:
    """``1/16``, ``1``, ``4``: the factor as a short fraction."""
    frac = Fraction(factor).limit_denominator(1024)
    return str(frac) if abs(float(frac) - factor) < 1e-12 else f"{factor:g}"


def gradient_norm_at_init(config, dataset, scheme: str, seed: int, batch: int) -> float:
    """``||d L / d theta||_2`` over all parameters at init; ``L`` the mean cross-entropy of ``batch`` samples."""
    from initlab.studies.weights import gradients_at_init

    norms = gradients_at_init(config, dataset, scheme, seed=seed, batch=batch)
    return math.sqrt(sum(v * v for v in norms.values()))


GOOD_START_SLACK = 0.05  # early accuracy within 5 points of He's mean counts as a good start
LATE_DROP = 0.02  # accuracy lost from a run's best epoch to its last that counts as instability


def unstable_later(row: dict[str, list], he_early_mean: float, early_step: int) -> int:
    """Seeds of ``row`` that started well and then dropped or diverged (see half B).

    ``row``: per seed ``early_acc``, ``drop_from_peak`` and ``diverged_step`` (None: never).
    """
    count = 0
    for early, drop, diverged in zip(row["early_acc"], row["drop_from_peak"], row["diverged_step"]):
        good_start = math.isfinite(early) and early >= he_early_mean - GOOD_START_SLACK
        late_failure = (diverged is not None and diverged > early_step) or (math.isfinite(drop) and drop > LATE_DROP)
        count += good_start and late_failure
    return count


def _geomean(values: list[float]) -> float:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in finite) / len(finite)) if finite else math.nan


def _plot(path: Path, factors: list[float], lrs: list[float], grad: dict, per_lr: dict, early_step: dict) -> Path:
    from initlab.plotting import new_figure, save, style

    fig, axes = new_figure(2, 2, size=(11, 7.5))
    factor_axis = "factor f (std = f x He)"
    axes[0].plot(factors, [_geomean(grad[f]) for f in factors], "o-", color="black")
    axes[0].set_xscale("log", base=2)
    style(
        axes[0],
        xlabel=factor_axis,
        ylabel="gradient norm at init",
        title="Gradient norm at init (geometric mean over seeds)",
        logy=True,
    )
    for lr in lrs:
        rows = per_lr[lr]
        label = f"lr {lr:g}"
        axes[1].plot(factors, [finite_mean(rows[f]["early_loss"]) for f in factors], "o-", label=label)
        axes[2].plot(factors, [100 * finite_mean(rows[f]["final_acc"]) for f in factors], "o-", label=label)
        axes[3].plot(
            factors,
            [100 * (rows[f]["diverged"] + rows[f]["failed"]) / len(rows[f]["final_acc"]) for f in factors],
            "o-",
            label=label,
        )
    steps = ", ".join(str(x) for x in sorted(set(early_step.values())))
    axes[2].set_ylim(-2, 102)
    axes[3].set_ylim(-2, 102)
    panels = (
        (axes[1], f"Test loss early in training (step {steps})", "test loss (mean over seeds)", True),
        (axes[2], "Final test accuracy", "test accuracy (%)", False),
        (axes[3], "Runs diverged (NaN/inf) or failed (< 2x chance)", "% of seeds", False),
    )
    for ax, title, ylabel, logy in panels:
        ax.set_xscale("log", base=2)
        style(ax, xlabel=factor_axis, ylabel=ylabel, title=title, logy=logy, legend=True)
    for ax in axes:
        ax.axvline(1.0, color="0.6", ls="--", lw=1)
    return save(fig, path)


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], list[float], list[float], tuple[int, ...]]:
    from initlab.studies.settings import as_list, seed_list

    s = ctx.setting(DEFAULTS, FULL)
    try:
        factors = sorted(float(Fraction(str(f))) for f in as_list(s["factors"]))
        lrs = [float(x) for x in as_list(s["lrs"])]
    except (TypeError, ValueError, ZeroDivisionError):
        raise UserError(
            f"factors and lrs: numbers (fractions like 1/16 allowed); got factors={s['factors']!r}, lrs={s['lrs']!r}"
        ) from None
    if any(not (math.isfinite(f) and f > 0) for f in factors) or len(set(factors)) != len(factors):
        raise UserError(f"factors: distinct numbers > 0; got {s['factors']}")
    if 1.0 not in factors or not any(f > 1 for f in factors):
        raise UserError(f"factors: must include 1 (He itself) and at least one factor > 1; got {s['factors']}")
    if not lrs or any(not (math.isfinite(x) and x > 0) for x in lrs):
        raise UserError(f"lrs: learning rates > 0; got {s['lrs']}")
    return s, factors, lrs, seed_list(s["seeds"])


@dataclass
class Measured:
    schemes: dict[float, str]  # factor -> scheme spec
    grad: dict[float, list[float]]  # factor -> gradient norm at init per seed
    per_lr: dict[float, dict[float, dict[str, Any]]]  # lr -> factor -> per-seed rows (see ``_factor_rows``)
    early_step: dict[float, int]  # lr -> the epoch-end step nearest to ``early_steps``
    experiments: list[str]
    chance: float


def _factor_rows(data: Any, schemes: dict[float, str], seeds, early: int, chance: float) -> dict[float, dict[str, Any]]:
    """Per factor, per seed: early loss and accuracy, final accuracy, drop from the peak, divergence."""
    runs = {(r["scheme"], r["seed"]): r for r in data.runs}
    epochs: dict[tuple[str, int], list[dict]] = {}
    for e in data.epochs:
        epochs.setdefault((e["scheme"], e["seed"]), []).append(e)
    rows = {}
    for f, sch in schemes.items():
        early_rec = [next(e for e in epochs[(sch, k)] if e["step"] == early) for k in seeds]
        final = [runs[(sch, k)]["test_acc"] for k in seeds]
        peak = [max(e["test_acc"] for e in epochs[(sch, k)]) for k in seeds]
        rows[f] = {
            "early_loss": [r["test_loss"] for r in early_rec],
            "early_acc": [r["test_acc"] for r in early_rec],
            "final_acc": final,
            "drop_from_peak": [p - a for p, a in zip(peak, final)],
            "diverged": sum(runs[(sch, k)]["status"] == "diverged" for k in seeds),
            "diverged_steps": [
                runs[(sch, k)]["diverged_step"] for k in seeds if runs[(sch, k)]["status"] == "diverged"
            ],
            "diverged_step": [runs[(sch, k)]["diverged_step"] for k in seeds],
            "failed": sum(runs[(sch, k)]["status"] != "diverged" and a < 2 * chance for k, a in zip(seeds, final)),
        }
    return rows


def measure(ctx: StudyContext, s: dict[str, Any], factors: list[float], lrs: list[float], seeds) -> Measured:
    """Gradient norms at init per factor and seed; one stored comparison per learning rate."""
    from initlab.data import load
    from initlab.sweep.config import CompareConfig

    schemes = {f: scheme_for(f) for f in factors}
    data_options = {"limit_train": int(s["limit_train"])} if s["limit_train"] else {}
    base = dict(
        schemes=tuple(schemes[f] for f in factors),
        seeds=seeds,
        dataset=s["dataset"],
        width=s["width"],
        depth=s["depth"],
        activation=s["activation"],
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        reference=schemes[1.0],
        paired_test="t",
        data_options=data_options,
    )
    dataset = load(s["dataset"], **data_options)
    chance = 1.0 / dataset.num_classes
    config = CompareConfig(**base, lr=lrs[0])
    grad = {f: [gradient_norm_at_init(config, dataset, schemes[f], k, s["grad_batch"]) for k in seeds] for f in factors}
    per_lr: dict[float, dict[float, dict[str, Any]]] = {}
    early_step: dict[float, int] = {}
    experiments = []
    for lr in lrs:
        data = ctx.compare(**base, lr=lr)
        experiments.append(data.experiment_id)
        steps = sorted({e["step"] for e in data.epochs})
        early_step[lr] = min(steps, key=lambda x: (abs(x - s["early_steps"]), x))
        per_lr[lr] = _factor_rows(data, schemes, seeds, early_step[lr], chance)
    return Measured(schemes, grad, per_lr, early_step, experiments, chance)


@dataclass
class Halves:
    """The two halves of the claim, tested against He (f = 1) at every lr and factor > 1."""

    tests_a: list[tuple[float, float, dict[str, Any]]]  # (lr, f, paired test of early loss)
    tests_b: list[tuple[float, float, dict[str, Any]]]  # (lr, f, paired test of final accuracy)
    faster: list[tuple[float, float]]
    worse: list[tuple[float, float]]
    more_divergence: list[tuple[float, float]]
    late: dict[tuple[float, float], int]
    after_good_start: list[tuple[float, float]]
    bad_from_start: list[tuple[float, float]]


def halves(m: Measured, factors: list[float], lrs: list[float]) -> Halves:
    """Half A (faster start) and half B (unstable later), each Holm-corrected over its (lr, f > 1) tests."""
    from initlab.stats import holm

    per_lr = m.per_lr
    large = [f for f in factors if f > 1]
    tests_a = [
        (lr, f, paired_effect(per_lr[lr][1.0]["early_loss"], per_lr[lr][f]["early_loss"])) for lr in lrs for f in large
    ]
    tests_b = [
        (lr, f, paired_effect(per_lr[lr][1.0]["final_acc"], per_lr[lr][f]["final_acc"])) for lr in lrs for f in large
    ]
    for tests in (tests_a, tests_b):
        for (_, _, t), p_holm in zip(tests, holm([t["p"] for _, _, t in tests])):
            t["p_holm"] = p_holm
    faster = [(lr, f) for lr, f, t in tests_a if t["mean"] > 0 and t["p_holm"] < ALPHA]
    worse = [(lr, f) for lr, f, t in tests_b if t["mean"] > 0 and t["p_holm"] < ALPHA]

    def broken(lr: float, f: float) -> int:
        return per_lr[lr][f]["diverged"] + per_lr[lr][f]["failed"]

    more_divergence = [(lr, f) for lr in lrs for f in large if broken(lr, f) > 0 and broken(lr, 1.0) == 0]
    late = {
        (lr, f): unstable_later(per_lr[lr][f], finite_mean(per_lr[lr][1.0]["early_acc"]), m.early_step[lr])
        for lr in lrs
        for f in factors
    }
    after_good_start = [(lr, f) for lr in lrs for f in large if late[(lr, f)] > late[(lr, 1.0)]]
    bad_from_start = [(lr, f) for lr, f in more_divergence if (lr, f) not in after_good_start]
    return Halves(tests_a, tests_b, faster, worse, more_divergence, late, after_good_start, bad_from_start)


def judge(half_a: bool, half_b: bool) -> str:
    """Pure: *supported* when both halves hold, *partly* when one does, else *not supported*."""
    return "supported" if half_a and half_b else "partly" if half_a or half_b else "not supported"


@register("scale", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """He's std times 1/16 ... 16: gradient norm at init, divergence, early loss, final accuracy;
    both halves of the article's claim tested separately (see the module docstring)."""
    s, factors, lrs, seeds = _read_settings(ctx)
    m = measure(ctx, s, factors, lrs, seeds)
    h = halves(m, factors, lrs)
    return present(ctx, s, factors, lrs, seeds, m, h, judge(bool(h.faster), bool(h.after_good_start)))


def _key(lr: float, f: float) -> str:
    return f"f={factor_label(f)} (lr {lr:g})"


def _evidence(factors, lrs, m: Measured, h: Halves) -> dict[str, Any]:
    return {
        "factors": [factor_label(f) for f in factors],
        "schemes": {factor_label(f): m.schemes[f] for f in factors},
        "grad_norm_at_init": {factor_label(f): m.grad[f] for f in factors},
        "early_step": {f"{lr:g}": m.early_step[lr] for lr in lrs},
        "per_lr": {f"{lr:g}": {factor_label(f): m.per_lr[lr][f] for f in factors} for lr in lrs},
        "half_a_faster_start": {
            "holds": bool(h.faster),
            "significant": [_key(*x) for x in h.faster],
            "tests": {_key(lr, f): t for lr, f, t in h.tests_a},
        },
        "half_b_unstable_later": {
            "holds": bool(h.after_good_start),
            "significantly_worse": [_key(*x) for x in h.worse],
            "unstable_after_good_start": [_key(*x) for x in h.after_good_start],
            "bad_from_the_start": [_key(*x) for x in h.bad_from_start],
            "late_unstable_seeds": {_key(lr, f): n for (lr, f), n in h.late.items()},
            "diverged_or_failed_where_he_did_not": [_key(*x) for x in h.more_divergence],
            "tests": {_key(lr, f): t for lr, f, t in h.tests_b},
        },
        "chance": m.chance,
    }


def _tables(factors, lrs, seeds, m: Measured, h: Halves) -> list:
    tables = []
    for lr in lrs:
        rows = []
        for f in factors:
            r = m.per_lr[lr][f]
            mean, a, b = mean_ci(r["final_acc"])
            rows.append(
                [
                    factor_label(f),
                    f"{_geomean(m.grad[f]):.3g}",
                    f"{finite_mean(r['early_loss']):.3g}",
                    f"{100 * finite_mean(r['early_acc']):.1f}",
                    f"{100 * mean:.1f} [{100 * a:.1f}, {100 * b:.1f}]" if len(seeds) > 1 else f"{100 * mean:.1f}",
                    f"{100 * finite_mean(r['drop_from_peak']):.1f}",
                    f"{r['diverged']}/{len(seeds)}",
                    f"{r['failed']}/{len(seeds)}",
                ]
            )
        early = m.early_step[lr]
        header = ["f", "|grad| at init", f"test loss @ step {early}", f"test acc % @ step {early}"]
        header += ["final test acc % (95% CI)", "best→final drop (pts)", "diverged", "failed"]
        tables.append((f"lr {lr:g}: per factor (std = f x He), {len(seeds)} seeds", header, rows))
    test_rows = []
    for (lr, f, ta), (_, _, tb) in zip(h.tests_a, h.tests_b):
        test_rows.append(
            [
                f"{lr:g}",
                factor_label(f),
                f"{ta['mean']:+.3g} [{ta['ci'][0]:+.3g}, {ta['ci'][1]:+.3g}]",
                f"{ta['p_holm']:.2g}",
                f"{100 * tb['mean']:+.1f} [{100 * tb['ci'][0]:+.1f}, {100 * tb['ci'][1]:+.1f}]",
                f"{tb['p_holm']:.2g}",
                str(m.per_lr[lr][f]["diverged"]),
            ]
        )
    tables.append(
        (
            "The two halves vs He (f = 1), paired by seed, Holm-corrected per half: A = early test loss "
            "(He − f; > 0: f starts faster), B = final accuracy pts (He − f; > 0: f ends worse)",
            [
                "lr",
                "f",
                "A: Δ early loss (95% CI)",
                "A: p Holm",
                "B: Δ final acc pts (95% CI)",
                "B: p Holm",
                "f diverged",
            ],
            test_rows,
        )
    )
    return tables


def _summary(factors, m: Measured, h: Halves, effect: float, best_lr: float, best_f: float) -> str:
    grad, key = m.grad, _key
    g1, gmax = _geomean(grad[1.0]), _geomean(grad[max(factors)])
    return (
        f"Gradient norm at init grows from {_geomean(grad[min(factors)]):.2g} (f={factor_label(min(factors))}) "
        f"through {g1:.2g} (He) to {gmax:.2g} (f={factor_label(max(factors))}). "
        + (
            "A (faster start): holds for " + ", ".join(key(*x) for x in h.faster)
            if h.faster
            else "A (faster start): no factor > 1 has a significantly lower early loss than He"
        )
        + f"; best gain {effect:+.3g} at {key(best_lr, best_f)} (step {m.early_step[best_lr]}). "
        f"B (unstable later, a drop after a good start): {'holds at ' if h.after_good_start else 'does not hold'}"
        + ", ".join(key(*x) for x in h.after_good_start)
        + (
            f"; bad from the start instead (not 'later'): {', '.join(key(*x) for x in h.bad_from_start)}"
            if h.bad_from_start
            else ""
        )
        + (f"; final accuracy significantly below He at {', '.join(key(*x) for x in h.worse)}" if h.worse else "")
        + "."
    )


def present(ctx, s, factors, lrs, seeds, m: Measured, h: Halves, verdict: str) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    large = [f for f in factors if f > 1]
    finite_a = [(lr, f, t) for lr, f, t in h.tests_a if math.isfinite(t["mean"])]
    if finite_a:
        best_lr, best_f, best = max(finite_a, key=lambda x: x[2]["mean"])
        effect, (lo, hi) = best["mean"], best["ci"]
    else:
        best_lr, best_f, effect, lo, hi = lrs[0], large[0], math.nan, math.nan, math.nan
    figure = _plot(ctx.out / "scale.png", factors, lrs, m.grad, m.per_lr, m.early_step)
    return StudyResult(
        study="scale",
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"early test loss He − {factor_label(best_f)}×He (lr {best_lr:g}, step {m.early_step[best_lr]})",
        summary=_summary(factors, m, h, effect, best_lr, best_f),
        evidence=_evidence(factors, lrs, m, h),
        tables=_tables(factors, lrs, seeds, m, h),
        figures=[figure],
        experiments=m.experiments,
        settings=s,
    )
