"""Study ``scale``: do large initial weights speed up the start of training and destabilise it later?

The experiment
--------------
He's normal initialization scaled by a factor ``f``: weights ``W ~ N(0, f^2 * 2 / fan_in)``,
the scheme ``variance_scaling(scale=2 f^2, mode=fan_in, distribution=normal)`` (``f = 1`` is
``he_normal``), for ``f`` in {1/16, 1/8, 1/4, 1/2, 1, 2, 4, 8, 16}. Default model and data: a
2 x 128 ReLU MLP on digits (training set less its validation split), batch 32, 20 epochs, 5
seeds, biases zero.

The sensitivity grid: FIXED learning rates
------------------------------------------
A setting is ``(optimizer, lr, budget)``: SGD (momentum 0.9) at 0.005 and 0.05, Adam at 1e-3
and 1e-2 (the larger rate of each optimizer is the aggressive one), each judged up to a budget
of 5 and of 20 epochs. The learning rate is deliberately *not* tuned per factor, unlike the
other studies (``CommonSettings.lr_grids``, selected on validation): the claim is about
instability, and picking for each factor the rate that trains it best would select away the
very runs that blow up. So each rate is its own stored fixed-lr comparison (all factors and
seeds, one per ``(optimizer, lr)``), and the settings ``sgd_lrs`` / ``adam_lrs`` list rates that
are all used, not a grid to choose from. A budget ``b`` reads the first ``b`` epochs of the same
runs. The shared settings (dataset, limit_train, seeds, epochs, budgets, batch_size,
optimizers) are read with ``common_settings``; its learning-rate grids hold the fixed rates here
and never reach ``CompareConfig.lr_grid``.

Measured, per factor and seed
-----------------------------
- **gradient norm at init**: ``||d L / d theta||_2`` over all parameters, ``L`` the mean
  cross-entropy of the first ``grad_batch`` (256) training samples (the same for every setting);
- **early loss and accuracy**: test loss and accuracy at the end of the epoch whose step count
  is nearest to ``early_steps`` (100; on digits with batch 32: epoch 2, step 82); every budget
  must come after that epoch, so that "later" has epochs to happen in;
- **at the budget ``b``**: test accuracy after epoch ``b``; the drop from the run's best epoch
  up to ``b`` to epoch ``b``; divergence (the engine's ``diverged``: loss or gradient NaN/inf)
  at a step up to the end of epoch ``b``; **failed**: not diverged yet test accuracy at ``b``
  below twice chance (``2 / classes``: a ReLU net whose units all died trains on without NaNs).

Judge, per setting (pure, unit-tested on made-up runs)
------------------------------------------------------
Two halves, each against He (``f = 1``) with seeds paired (seed ``s`` fixes the data order for
every factor):

- **A (faster start)**: for some ``f > 1``, the early test loss of He minus that of ``f`` is
  > 0 with a paired t-test's p < 0.05, Holm-corrected over the setting's factors ``f > 1``
  (pairs where a loss is not finite left out). A is read at the early step, so it is the same
  for both budgets of an ``(optimizer, lr)``;
- **B (unstable later)**: for some ``f > 1``, at least half the seeds
  (``MIN_UNSTABLE_SHARE``) are *unstable after a good start* by the budget, and more of them
  than under He. A seed is: early test accuracy at least He's mean early accuracy minus
  ``GOOD_START_SLACK`` (5 points), then a drop of more than ``LATE_DROP`` (2 points) from the
  best epoch up to the budget to the budget, or a divergence after the early step and by the
  budget (``unstable_later``). The share is asked for because one seed's dip is within the
  noise: a 2-point drop is 8 images of digits' 360-image test set, and He's own runs dip so at
  the larger rates; such isolated seeds are reported (``isolated``), not counted. Said plainly:
  the share was set after the first run of this grid, which under the earlier rule (more
  unstable seeds than He, one being enough) read ``partly``, flipping at SGD 0.005 by 5 epochs on
  one seed each at x2 and x16 dipping 2.2 points; those seeds are the ``isolated`` ones. A run that is
  bad from the start (dead units, saturated logits, an early divergence) is not "unstable
  later": it is reported apart, as are the paired t-tests (Holm over the factors) of the
  accuracy at the budget.

A setting is *supported* when both halves hold, *partly* when one does, *not supported* when
neither. The study's verdict (``initlab.studies.grid.judge_across``) is ``supported`` / ``not
supported`` only when every setting agrees, else ``partly``, naming the settings that flip.
Effect: half A's largest mean early-loss gain over He (``loss(He) - loss(f)``) over ``f > 1`` and
the rates, with its Student t 95% CI over seeds; negative: the larger weights started *slower*.

Source: the article's misconceptions section ("initializing weights to very large values will
speed up the learning process ... they can also lead to unstable behavior later on"); He et
al. (2015) for the scale that preserves the signal in ReLU nets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.grid import CommonSettings, Judgement, common_settings, float_list, judge_across, positive_int
from initlab.studies.settings import finite_mean, paired_effect

NAME = "scale"
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
    "optimizers": ["sgd", "adam"],
    "sgd_lrs": [0.005, 0.05],  # FIXED rates (SGD momentum 0.9), every one used: see the module docstring
    "adam_lrs": [1e-3, 1e-2],
    "epochs": 20,
    "budgets": [5, 20],  # "unstable later" is judged up to each budget
    "seeds": 5,
    "batch_size": 32,
    "early_steps": 100,  # "the initial phase": the epoch end nearest to this step
    "grad_batch": 256,  # training samples for the gradient norm at init
}
FULL: dict[str, Any] = {"dataset": "fashion-mnist", "limit_train": 10000, "epochs": 10, "budgets": [3, 10]}
ALPHA = 0.05
GOOD_START_SLACK = 0.05  # early accuracy within 5 points of He's mean counts as a good start
LATE_DROP = 0.02  # accuracy lost from a run's best epoch to the budget that counts as instability
MIN_UNSTABLE_SHARE = 0.5  # half B: at least this share of a factor's seeds unstable after a good start


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


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """An optimizer at one fixed learning rate: one stored comparison."""

    optimizer: str
    lr: float

    @property
    def label(self) -> str:
        return f"{self.optimizer} lr {self.lr:g}"


@dataclass(frozen=True)
class RateSetting:
    """One point of the grid: a fixed rate, judged up to ``budget`` epochs."""

    rate: Rate
    budget: int

    @property
    def label(self) -> str:
        return f"{self.rate.label}, {self.budget} epochs"


@dataclass(frozen=True)
class ScaleSettings:
    common: CommonSettings  # shared vocabulary; its lr_grids hold the fixed rates (never tuned)
    factors: tuple[float, ...]
    early_steps: int
    grad_batch: int

    @property
    def rates(self) -> list[Rate]:
        return [Rate(o, lr) for o, lrs in self.common.lr_grids.items() for lr in lrs]

    @property
    def settings(self) -> list[RateSetting]:
        return [RateSetting(r, b) for r in self.rates for b in self.common.budgets]


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], ScaleSettings]:
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    try:
        factors = tuple(sorted(float(Fraction(str(f))) for f in as_list(s["factors"])))
    except (TypeError, ValueError, ZeroDivisionError):
        raise UserError(f"factors: numbers (fractions like 1/16 allowed); got {s['factors']!r}") from None
    if any(not (math.isfinite(f) and f > 0) for f in factors) or len(set(factors)) != len(factors):
        raise UserError(f"factors: distinct numbers > 0; got {s['factors']}")
    if 1.0 not in factors or not any(f > 1 for f in factors):
        raise UserError(f"factors: must include 1 (He itself) and at least one factor > 1; got {s['factors']}")
    optimizers = [str(o) for o in as_list(s["optimizers"])]
    if not optimizers or any(o not in ("sgd", "adam") for o in optimizers) or len(set(optimizers)) < len(optimizers):
        raise UserError(f"optimizers: sgd and/or adam, each once; got {s['optimizers']!r}")
    rates = {o: float_list(f"{o}_lrs", s[f"{o}_lrs"]) for o in optimizers}
    common = common_settings({**s, **{f"{o}_lr_grid": r for o, r in rates.items()}})
    return s, ScaleSettings(
        common, factors, positive_int("early_steps", s["early_steps"]), positive_int("grad_batch", s["grad_batch"])
    )


def steps_per_epoch(n_train: int, batch_size: int, val_fraction: float) -> int:
    """Optimizer steps per epoch on ``n_train`` samples less the validation split (last batch kept)."""
    from initlab.data.split import validation_size

    return math.ceil((n_train - validation_size(val_fraction, n_train)) / batch_size)


def early_epoch(per_epoch: int, early_steps: int, epochs: int) -> int:
    """The epoch (1-based) whose end is nearest to step ``early_steps`` (the earlier one on a tie)."""
    return min(range(1, epochs + 1), key=lambda e: (abs(e * per_epoch - early_steps), e))


# --- measure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedCurve:
    """One run's test metrics after epochs 1..E, and the step it diverged at (None: never)."""

    steps: tuple[int, ...]
    test_acc: tuple[float, ...]
    test_loss: tuple[float, ...]
    diverged_step: int | None


@dataclass
class Measured:
    schemes: dict[float, str]  # factor -> scheme spec
    grad: dict[float, list[float]]  # factor -> gradient norm at init per seed
    curves: dict[Rate, dict[float, list[SeedCurve]]]  # rate -> factor -> per seed
    early: int  # the early epoch
    experiments: list[str]
    chance: float


def _curves(data: Any, schemes: dict[float, str], seeds: Sequence[int]) -> dict[float, list[SeedCurve]]:
    runs = {(r["scheme"], r["seed"]): r for r in data.runs}
    by_run = data.curves()
    out: dict[float, list[SeedCurve]] = {}
    for f, sch in schemes.items():
        out[f] = []
        for k in seeds:
            epochs = [e for e in by_run[(sch, k)] if e["epoch"] >= 1]
            out[f].append(
                SeedCurve(
                    steps=tuple(int(e["step"]) for e in epochs),
                    test_acc=tuple(float(e["test_acc"]) for e in epochs),
                    test_loss=tuple(float(e["test_loss"]) for e in epochs),
                    diverged_step=runs[(sch, k)]["diverged_step"] if runs[(sch, k)]["status"] == "diverged" else None,
                )
            )
    return out


def measure(ctx: StudyContext, s: dict[str, Any], grid: ScaleSettings) -> Measured:
    """Gradient norms at init per factor and seed; one stored fixed-lr comparison per rate."""
    from initlab.data import load
    from initlab.sweep.config import CompareConfig

    common = grid.common
    schemes = {f: scheme_for(f) for f in grid.factors}
    data_options = common.data_options
    base = dict(
        schemes=tuple(schemes[f] for f in grid.factors),
        seeds=common.seeds,
        dataset=common.dataset,
        width=s["width"],
        depth=s["depth"],
        activation=s["activation"],
        epochs=common.epochs,
        budgets=common.budgets,
        batch_size=common.batch_size,
        reference=schemes[1.0],
        paired_test="t",
        data_options=data_options,
    )
    config = CompareConfig(**base)
    dataset = load(common.dataset, **data_options)
    per_epoch = steps_per_epoch(int(dataset.y_train.numel()), common.batch_size, config.val_fraction)
    early = early_epoch(per_epoch, grid.early_steps, common.epochs)
    if early >= common.budgets[0]:
        raise UserError(
            f"budgets: each must be later than the early epoch {early} (the epoch end nearest to "
            f"early_steps={grid.early_steps}, {per_epoch} steps per epoch); got {list(common.budgets)}"
        )
    grad = {
        f: [gradient_norm_at_init(config, dataset, schemes[f], k, grid.grad_batch) for k in common.seeds]
        for f in grid.factors
    }
    curves: dict[Rate, dict[float, list[SeedCurve]]] = {}
    experiments = []
    for rate in grid.rates:
        data = ctx.compare(**base, optimizer=rate.optimizer, lr=rate.lr)
        experiments.append(data.experiment_id)
        curves[rate] = _curves(data, schemes, common.seeds)
    return Measured(schemes, grad, curves, early, experiments, 1.0 / dataset.num_classes)


# --- judge (pure) ---------------------------------------------------------------------------


def budget_row(curves: Sequence[SeedCurve], early: int, budget: int, chance: float) -> dict[str, Any]:
    """Per seed, read up to epoch ``budget``: early loss and accuracy (epoch ``early``), accuracy
    at the budget, drop from the best epoch to it, divergence step by then (None: none)."""
    final = [c.test_acc[budget - 1] for c in curves]
    end = [c.steps[budget - 1] for c in curves]
    diverged_step = [
        c.diverged_step if c.diverged_step is not None and c.diverged_step <= e else None for c, e in zip(curves, end)
    ]
    return {
        "early_loss": [c.test_loss[early - 1] for c in curves],
        "early_acc": [c.test_acc[early - 1] for c in curves],
        "early_step": curves[0].steps[early - 1] if curves else 0,
        "final_acc": final,
        "drop_from_peak": [max(c.test_acc[:budget]) - a for c, a in zip(curves, final)],
        "diverged_step": diverged_step,
        "diverged": sum(d is not None for d in diverged_step),
        "failed": sum(d is None and a < 2 * chance for d, a in zip(diverged_step, final)),
    }


def unstable_later(row: Mapping[str, Sequence], he_early_mean: float, early_step: int) -> int:
    """Seeds of ``row`` that started well and then dropped or diverged (see half B).

    ``row``: per seed ``early_acc``, ``drop_from_peak`` and ``diverged_step`` (None: never), all
    read up to the budget.
    """
    count = 0
    for early, drop, diverged in zip(row["early_acc"], row["drop_from_peak"], row["diverged_step"]):
        good_start = math.isfinite(early) and early >= he_early_mean - GOOD_START_SLACK
        late_failure = (diverged is not None and diverged > early_step) or (math.isfinite(drop) and drop > LATE_DROP)
        count += good_start and late_failure
    return count


@dataclass
class Halves:
    """The two halves of the claim in one setting, against He (f = 1) at each factor > 1."""

    tests_a: dict[float, dict[str, Any]]  # f -> paired test of the early loss (He - f)
    tests_b: dict[float, dict[str, Any]]  # f -> paired test of the accuracy at the budget (He - f)
    late: dict[float, int]  # f (He too) -> seeds unstable after a good start
    faster: list[float] = field(default_factory=list)
    worse: list[float] = field(default_factory=list)
    after_good_start: list[float] = field(default_factory=list)  # half B holds at these factors
    isolated: list[float] = field(default_factory=list)  # more unstable seeds than He, but under the share
    bad_from_start: list[float] = field(default_factory=list)  # diverged/failed where He did not, not "later"

    @property
    def a(self) -> bool:
        return bool(self.faster)

    @property
    def b(self) -> bool:
        return bool(self.after_good_start)


def halves(rows: Mapping[float, Mapping[str, Any]]) -> Halves:
    """Pure: per-factor rows of one setting (``budget_row``; factor 1 is He) -> both halves (see
    the module docstring); the paired tests Holm-corrected over the factors > 1."""
    from initlab.stats import holm

    he = rows[1.0]
    large = sorted(f for f in rows if f > 1)
    tests_a = {f: paired_effect(he["early_loss"], rows[f]["early_loss"]) for f in large}
    tests_b = {f: paired_effect(he["final_acc"], rows[f]["final_acc"]) for f in large}
    for tests in (tests_a, tests_b):
        for t, p_holm in zip(tests.values(), holm([t["p"] for t in tests.values()])):
            t["p_holm"] = p_holm
    early_step = he["early_step"]
    late = {f: unstable_later(r, finite_mean(he["early_acc"]), early_step) for f, r in rows.items()}
    h = Halves(tests_a, tests_b, late)
    h.faster = [f for f, t in tests_a.items() if t["mean"] > 0 and t["p_holm"] < ALPHA]
    h.worse = [f for f, t in tests_b.items() if t["mean"] > 0 and t["p_holm"] < ALPHA]
    enough = math.ceil(MIN_UNSTABLE_SHARE * len(he["early_acc"]))
    h.after_good_start = [f for f in large if late[f] > late[1.0] and late[f] >= enough]
    h.isolated = [f for f in large if late[1.0] < late[f] < enough]

    def broken(f: float) -> int:
        return rows[f]["diverged"] + rows[f]["failed"]

    h.bad_from_start = [f for f in large if broken(f) > broken(1.0) and f not in h.after_good_start]
    return h


def judge_setting(h: Halves) -> str:
    """*supported* when both halves hold, *partly* when one does, else *not supported*."""
    return "supported" if h.a and h.b else "partly" if h.a or h.b else "not supported"


def judge(by_setting: Mapping[str, Halves]) -> Judgement:
    """Pure: setting label -> its halves  ->  the study's judgement across the settings."""
    return judge_across({label: judge_setting(h) for label, h in by_setting.items()})


def judged_rows(m: Measured, grid: ScaleSettings) -> dict[RateSetting, dict[float, dict[str, Any]]]:
    """setting -> factor -> ``budget_row``."""
    return {
        st: {f: budget_row(m.curves[st.rate][f], m.early, st.budget, m.chance) for f in grid.factors}
        for st in grid.settings
    }


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """He's std times 1/16 ... 16 at fixed rates of SGD and Adam, two budgets: gradient norm at init,
    divergence, early loss, accuracy at each budget; both halves of the claim tested per setting."""
    from initlab.studies.scale_report import present

    s, grid = _read_settings(ctx)
    m = measure(ctx, s, grid)
    rows = judged_rows(m, grid)
    by_setting = {st: halves(r) for st, r in rows.items()}
    judgement = judge({st.label: h for st, h in by_setting.items()})
    return present(ctx, s, grid, m, rows, by_setting, judgement)


__all__ = [
    "CLAIM",
    "DEFAULTS",
    "MIN_UNSTABLE_SHARE",
    "Halves",
    "Measured",
    "Rate",
    "RateSetting",
    "ScaleSettings",
    "SeedCurve",
    "budget_row",
    "early_epoch",
    "halves",
    "judge",
    "judge_setting",
    "measure",
    "run",
    "scheme_for",
    "steps_per_epoch",
    "unstable_later",
]
