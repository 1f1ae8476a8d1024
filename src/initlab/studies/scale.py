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
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register

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
    import torch.nn.functional as F

    from initlab.engine import initialize_member
    from initlab.engine.init import build_template
    from initlab.schemes import scheme_from_spec
    from initlab.sweep.chunks import member_init, model_factory

    model = build_template(model_factory(config, dataset.input_shape, dataset.num_classes))
    initialize_member(model, member_init(scheme), seed, bias_init=scheme_from_spec(config.bias_init))
    n = min(batch, dataset.x_train.shape[0])
    loss = F.cross_entropy(model(dataset.x_train[:n]), dataset.y_train[:n])
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))


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


def _paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Mean of a - b over finite pairs, its t 95% CI and the paired t-test p-value."""
    from initlab.stats import paired_test

    diffs = [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if not diffs:
        return {"mean": math.nan, "ci": [math.nan, math.nan], "p": math.nan, "n": 0}
    mean, lo, hi = mean_ci(diffs)
    _, p = paired_test(a, b, "t")
    return {"mean": mean, "ci": [lo, hi], "p": p, "n": len(diffs)}


def _geomean(values: list[float]) -> float:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in finite) / len(finite)) if finite else math.nan


def _plot(path: Path, factors: list[float], lrs: list[float], grad: dict, per_lr: dict, early_step: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    ax.plot(factors, [_geomean(grad[f]) for f in factors], "o-", color="black")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("factor f (std = f x He)")
    ax.set_ylabel("gradient norm at init")
    ax.set_title("Gradient norm at init (geometric mean over seeds)")
    for lr in lrs:
        rows = per_lr[lr]
        label = f"lr {lr:g}"
        axes[0][1].plot(factors, [_finite_mean(rows[f]["early_loss"]) for f in factors], "o-", label=label)
        axes[1][0].plot(factors, [100 * _finite_mean(rows[f]["final_acc"]) for f in factors], "o-", label=label)
        axes[1][1].plot(
            factors,
            [100 * (rows[f]["diverged"] + rows[f]["failed"]) / len(rows[f]["final_acc"]) for f in factors],
            "o-",
            label=label,
        )
    steps = ", ".join(str(x) for x in sorted(set(early_step.values())))
    axes[0][1].set_title(f"Test loss early in training (step {steps})")
    axes[0][1].set_ylabel("test loss (mean over seeds)")
    axes[0][1].set_yscale("log")
    axes[1][0].set_title("Final test accuracy")
    axes[1][0].set_ylabel("test accuracy (%)")
    axes[1][0].set_ylim(-2, 102)
    axes[1][1].set_title("Runs diverged (NaN/inf) or failed (< 2x chance)")
    axes[1][1].set_ylabel("% of seeds")
    axes[1][1].set_ylim(-2, 102)
    for a in (axes[0][1], axes[1][0], axes[1][1]):
        a.set_xscale("log", base=2)
        a.set_xlabel("factor f (std = f x He)")
        a.legend(fontsize=8)
    for a in axes.flat:
        a.axvline(1.0, color="0.6", ls="--", lw=1)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


@register("scale", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """He's std times 1/16 ... 16: gradient norm at init, divergence, early loss, final accuracy;
    both halves of the article's claim tested separately (see the module docstring)."""
    from initlab.data import load
    from initlab.stats import holm
    from initlab.studies.settings import as_list, seed_list
    from initlab.sweep.config import CompareConfig

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
    seeds = seed_list(s["seeds"])
    schemes = {f: scheme_for(f) for f in factors}
    he = schemes[1.0]
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
        reference=he,
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
        early = min(steps, key=lambda x: (abs(x - s["early_steps"]), x))
        early_step[lr] = early
        runs = {(r["scheme"], r["seed"]): r for r in data.runs}
        epochs: dict[tuple[str, int], list[dict]] = {}
        for e in data.epochs:
            epochs.setdefault((e["scheme"], e["seed"]), []).append(e)
        rows = {}
        for f in factors:
            sch = schemes[f]
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
        per_lr[lr] = rows

    # the two halves, each Holm-corrected over its (lr, f > 1) tests
    large = [f for f in factors if f > 1]
    tests_a = [
        (lr, f, _paired(per_lr[lr][1.0]["early_loss"], per_lr[lr][f]["early_loss"])) for lr in lrs for f in large
    ]
    tests_b = [(lr, f, _paired(per_lr[lr][1.0]["final_acc"], per_lr[lr][f]["final_acc"])) for lr in lrs for f in large]
    for tests in (tests_a, tests_b):
        for (_, _, t), p_holm in zip(tests, holm([t["p"] for _, _, t in tests])):
            t["p_holm"] = p_holm
    faster = [(lr, f) for lr, f, t in tests_a if t["mean"] > 0 and t["p_holm"] < ALPHA]
    worse = [(lr, f) for lr, f, t in tests_b if t["mean"] > 0 and t["p_holm"] < ALPHA]

    def broken(lr: float, f: float) -> int:
        return per_lr[lr][f]["diverged"] + per_lr[lr][f]["failed"]

    more_divergence = [(lr, f) for lr in lrs for f in large if broken(lr, f) > 0 and broken(lr, 1.0) == 0]
    late = {
        (lr, f): unstable_later(per_lr[lr][f], _finite_mean(per_lr[lr][1.0]["early_acc"]), early_step[lr])
        for lr in lrs
        for f in factors
    }
    after_good_start = [(lr, f) for lr in lrs for f in large if late[(lr, f)] > late[(lr, 1.0)]]
    bad_from_start = [(lr, f) for lr, f in more_divergence if (lr, f) not in after_good_start]
    half_a = bool(faster)
    half_b = bool(after_good_start)
    verdict = "supported" if half_a and half_b else "partly" if half_a or half_b else "not supported"

    finite_a = [(lr, f, t) for lr, f, t in tests_a if math.isfinite(t["mean"])]
    if finite_a:
        best_lr, best_f, best = max(finite_a, key=lambda x: x[2]["mean"])
        effect, (lo, hi) = best["mean"], best["ci"]
    else:
        best_lr, best_f, effect, lo, hi = lrs[0], large[0], math.nan, math.nan, math.nan

    def key(lr: float, f: float) -> str:
        return f"f={factor_label(f)} (lr {lr:g})"

    evidence = {
        "factors": [factor_label(f) for f in factors],
        "schemes": {factor_label(f): schemes[f] for f in factors},
        "grad_norm_at_init": {factor_label(f): grad[f] for f in factors},
        "early_step": {f"{lr:g}": early_step[lr] for lr in lrs},
        "per_lr": {f"{lr:g}": {factor_label(f): per_lr[lr][f] for f in factors} for lr in lrs},
        "half_a_faster_start": {
            "holds": half_a,
            "significant": [key(*x) for x in faster],
            "tests": {key(lr, f): t for lr, f, t in tests_a},
        },
        "half_b_unstable_later": {
            "holds": half_b,
            "significantly_worse": [key(*x) for x in worse],
            "unstable_after_good_start": [key(*x) for x in after_good_start],
            "bad_from_the_start": [key(*x) for x in bad_from_start],
            "late_unstable_seeds": {key(lr, f): n for (lr, f), n in late.items()},
            "diverged_or_failed_where_he_did_not": [key(*x) for x in more_divergence],
            "tests": {key(lr, f): t for lr, f, t in tests_b},
        },
        "chance": chance,
    }

    tables = []
    for lr in lrs:
        rows = []
        for f in factors:
            r = per_lr[lr][f]
            m, a, b = mean_ci(r["final_acc"])
            rows.append(
                [
                    factor_label(f),
                    f"{_geomean(grad[f]):.3g}",
                    f"{_finite_mean(r['early_loss']):.3g}",
                    f"{100 * _finite_mean(r['early_acc']):.1f}",
                    f"{100 * m:.1f} [{100 * a:.1f}, {100 * b:.1f}]" if len(seeds) > 1 else f"{100 * m:.1f}",
                    f"{100 * _finite_mean(r['drop_from_peak']):.1f}",
                    f"{r['diverged']}/{len(seeds)}",
                    f"{r['failed']}/{len(seeds)}",
                ]
            )
        tables.append(
            (
                f"lr {lr:g}: per factor (std = f x He), {len(seeds)} seeds",
                [
                    "f",
                    "|grad| at init",
                    f"test loss @ step {early_step[lr]}",
                    f"test acc % @ step {early_step[lr]}",
                    "final test acc % (95% CI)",
                    "best→final drop (pts)",
                    "diverged",
                    "failed",
                ],
                rows,
            )
        )
    test_rows = []
    for (lr, f, ta), (_, _, tb) in zip(tests_a, tests_b):
        test_rows.append(
            [
                f"{lr:g}",
                factor_label(f),
                f"{ta['mean']:+.3g} [{ta['ci'][0]:+.3g}, {ta['ci'][1]:+.3g}]",
                f"{ta['p_holm']:.2g}",
                f"{100 * tb['mean']:+.1f} [{100 * tb['ci'][0]:+.1f}, {100 * tb['ci'][1]:+.1f}]",
                f"{tb['p_holm']:.2g}",
                str(per_lr[lr][f]["diverged"]),
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

    figure = _plot(ctx.out / "scale.png", factors, lrs, grad, per_lr, early_step)
    g1, gmax = _geomean(grad[1.0]), _geomean(grad[max(factors)])
    summary = (
        f"Gradient norm at init grows from {_geomean(grad[min(factors)]):.2g} (f={factor_label(min(factors))}) "
        f"through {g1:.2g} (He) to {gmax:.2g} (f={factor_label(max(factors))}). "
        + (
            "A (faster start): holds for " + ", ".join(key(*x) for x in faster)
            if half_a
            else "A (faster start): no factor > 1 has a significantly lower early loss than He"
        )
        + f"; best gain {effect:+.3g} at {key(best_lr, best_f)} (step {early_step[best_lr]}). "
        f"B (unstable later, a drop after a good start): {'holds at ' if half_b else 'does not hold'}"
        + ", ".join(key(*x) for x in after_good_start)
        + (
            f"; bad from the start instead (not 'later'): {', '.join(key(*x) for x in bad_from_start)}"
            if bad_from_start
            else ""
        )
        + (f"; final accuracy significantly below He at {', '.join(key(*x) for x in worse)}" if worse else "")
        + "."
    )
    return StudyResult(
        study="scale",
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"early test loss He − {factor_label(best_f)}×He (lr {best_lr:g}, step {early_step[best_lr]})",
        summary=summary,
        evidence=evidence,
        tables=tables,
        figures=[figure],
        experiments=experiments,
        settings=s,
    )
