"""From stored runs to the tuned comparison: lr selected on validation, budgets, equivalence.

Pure functions of the records (no training, no store): ``Run.from_record`` decodes a stored run
(a ``RunRecord`` or its dict, with its epochs), ``analyze`` makes the ``Analysis``:

- **Selection.** Per scheme and budget, the selected learning rate is the one with the best mean
  *validation* accuracy over seeds at that budget (ties: the smaller rate; a diverged run counts
  as accuracy 0, so a rate that sometimes diverges pays for it). Test data is never read here.
  The summary's ``lr`` is the selection at the final budget.
- **Budgets.** At each budget (an epoch), the tuned test accuracy over seeds, so "trains faster"
  (an early budget) and "ends better" (the final one) are separate statements.
- **Equivalence.** Each scheme against the reference at each budget: the mean paired difference
  in test accuracy with a 95% CI from a paired bootstrap over seeds *and* test examples (from
  the stored per-example correctness), and a verdict among better / worse / equivalent
  (the CI inside ±margin) / inconclusive (``initlab.stats.equivalence_verdict``).

For regression and lm (``initlab.tasks``) the per-epoch numbers are the task's metric (test MSE
or loss, lower is better): there is no per-example correctness, so no equivalence verdict.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, cast

import numpy as np

from initlab import stats


@dataclass(frozen=True)
class Run:
    """One stored member, decoded: its scheme, lr, seed, outcome and per-epoch numbers."""

    label: str  # the store's scheme column: "he_normal" or "he_normal@lr=0.01"
    scheme: str
    lr: float | None
    seed: int
    status: str
    test_acc: float
    test_loss: float
    train_acc: float
    train_loss: float
    diverged_step: int | None
    wall_time: float
    steps_to_target: int | None
    val_acc: tuple[float, ...] = ()  # per epoch, epoch 1 first; NaN when not measured
    test_curve: Mapping[int, float] = field(default_factory=dict)  # epoch -> test accuracy (the task's metric)
    correct: Mapping[int, str] = field(default_factory=dict)  # epoch -> packed per-example correctness
    n_test: int = 0
    r2: float | None = None  # regression: 1 − MSE/Var(y_test), stored with the run
    backend: str | None = None  # the engine backend that trained it, and why (provenance)
    backend_reason: str | None = None

    @classmethod
    def from_record(cls, record: Any, epochs: Sequence[Mapping], *, target: float | None, metric: Any = None) -> Run:
        """``metric`` (``initlab.tasks.Metric``; None: accuracy) says which epoch field the curve
        and steps to target read, and which way is better."""
        r = asdict(cast(Any, record)) if is_dataclass(record) else dict(record)
        extra = r.get("extra") or {}
        key = "test_acc" if metric is None else metric.run_key
        curve = sorted((int(e["epoch"]), int(e["step"]), _float(e[key])) for e in epochs)
        reached = extra.get("steps_to_target", "absent")
        # the engine tracks an accuracy target only; other metrics' targets are the report's
        if reached == "absent" or key != "test_acc":  # absent: stored before it was kept with the run
            reached = stats.steps_to_target(
                [c[1] for c in curve],
                [c[2] for c in curve],
                target,
                True if metric is None else metric.higher_is_better,
            )
        val = tuple(math.nan if v is None else float(v) for v in extra.get("val_acc", ()))
        return cls(
            label=r["scheme"],
            scheme=extra.get("scheme", r["scheme"]),
            lr=extra.get("lr"),
            seed=int(r["seed"]),
            status=r["status"],
            test_acc=float(r["test_acc"]),
            test_loss=float(r["test_loss"]),
            train_acc=float(r["train_acc"]),
            train_loss=float(r["train_loss"]),
            diverged_step=r.get("diverged_step"),
            wall_time=float(r.get("wall_time", math.nan)),
            steps_to_target=reached,
            val_acc=val,
            test_curve={c[0]: c[2] for c in curve},
            correct={int(k): v for k, v in (extra.get("correct") or {}).items()},
            n_test=int(extra.get("n_test", 0)),
            r2=extra.get("r2"),
            backend=extra.get("backend"),
            backend_reason=extra.get("backend_reason"),
        )

    def val_at(self, epoch: int) -> float:
        """Validation accuracy after ``epoch`` (0 for a diverged run, NaN when not measured)."""
        if self.status == "diverged" and self.diverged_step is not None:
            return 0.0
        return self.val_acc[epoch - 1] if 0 < epoch <= len(self.val_acc) else math.nan

    def correct_at(self, epoch: int) -> np.ndarray | None:
        from initlab.engine.result import unpack_correct

        text = self.correct.get(epoch)
        return None if text is None else unpack_correct(text, self.n_test)

    def to_row(self) -> dict[str, Any]:
        """The run as the plain dict the tables, plots and studies read."""
        return dict(
            scheme=self.scheme,
            seed=self.seed,
            lr=self.lr,
            status=self.status,
            test_acc=self.test_acc,
            test_loss=self.test_loss,
            train_acc=self.train_acc,
            train_loss=self.train_loss,
            diverged_step=self.diverged_step,
            steps_to_target=self.steps_to_target,
            wall_time=self.wall_time,
        )


@dataclass(frozen=True)
class BudgetRow:
    """One scheme at one budget: the selected lr, tuned test accuracy, and the paired comparison."""

    scheme: str
    epoch: int
    lr: float | None
    n: int
    mean: float
    ci_low: float
    ci_high: float
    val_means: dict[str, float]  # lr (as text) -> mean validation accuracy at this budget
    diff: float | None = None  # mean paired test-accuracy difference vs the reference
    diff_ci: tuple[float, float] | None = None
    vs_reference: str | None = None  # better / worse / equivalent / inconclusive; None for the reference

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["diff_ci"] = list(self.diff_ci) if self.diff_ci is not None else None
        return out


@dataclass
class Analysis:
    """Selected rates per budget, budget rows, and the tuned runs (at the final budget's rates)."""

    budgets: list[int]
    rates: dict[str, list[float | None]]  # scheme -> rates trained
    selected: dict[int, dict[str, float | None]]  # budget -> scheme -> lr
    rows: dict[int, dict[str, BudgetRow]]  # budget -> scheme -> row
    tuned_runs: list[Run]
    margin: float

    @property
    def final(self) -> int:
        return self.budgets[-1]


def lr_key(lr: float | None) -> str:
    return "fixed" if lr is None else repr(float(lr))


def select_lr(runs: Sequence[Run], epoch: int) -> tuple[float | None, dict[str, float]]:
    """The rate with the best mean validation accuracy after ``epoch`` (ties: the smaller), and
    every rate's mean. Reads ``val_acc`` only: the selection cannot see test data."""
    by_lr: dict[float | None, list[float]] = defaultdict(list)
    for r in runs:
        by_lr[r.lr].append(r.val_at(epoch))
    means = {lr: float(np.mean(v)) if v and all(math.isfinite(x) for x in v) else math.nan for lr, v in by_lr.items()}
    order = sorted(
        means, key=lambda lr: (-(means[lr] if math.isfinite(means[lr]) else -1.0), -math.inf if lr is None else lr)
    )
    return order[0], {lr_key(lr): means[lr] for lr in sorted(means, key=lambda x: -1.0 if x is None else x)}


def analyze(
    runs: Sequence[Run],
    *,
    schemes: Sequence[str],
    reference: str | None,
    budgets: Sequence[int],
    margin: float,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Analysis:
    """Select rates, summarize each budget, and compare every scheme with ``reference``.

    ``bounds``: the range of the curve's metric (an accuracy by default) its CIs are clipped to."""
    by_scheme: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_scheme[r.scheme].append(r)
    schemes = [s for s in schemes if s in by_scheme] + sorted(set(by_scheme) - set(schemes))
    last_epoch = max((max(r.test_curve, default=0) for r in runs), default=0)
    budgets = sorted({b for b in budgets if b <= last_epoch} | ({last_epoch} if last_epoch else set()))
    selected: dict[int, dict[str, float | None]] = {}
    rows: dict[int, dict[str, BudgetRow]] = {}
    for epoch in budgets:
        selected[epoch], rows[epoch] = {}, {}
        chosen: dict[str, list[Run]] = {}
        for s in schemes:
            lr, means = select_lr(by_scheme[s], epoch)
            selected[epoch][s] = lr
            chosen[s] = sorted((r for r in by_scheme[s] if r.lr == lr), key=lambda r: r.seed)
            accs = [r.test_curve.get(epoch, math.nan) for r in chosen[s]]
            summ = stats.summarize(accs, bounds=bounds)
            rows[epoch][s] = BudgetRow(s, epoch, lr, summ.n, summ.mean, summ.ci_low, summ.ci_high, means)
        if reference in chosen:
            for s in schemes:
                if s != reference:
                    rows[epoch][s] = _versus(rows[epoch][s], chosen[s], chosen[reference], epoch, margin)
    final = budgets[-1] if budgets else None
    tuned = [r for s in schemes for r in by_scheme[s] if final is None or r.lr == selected[final][s]]
    rates = {s: sorted({r.lr for r in by_scheme[s]}, key=lambda x: -1.0 if x is None else x) for s in schemes}
    return Analysis(budgets, rates, selected, rows, tuned, margin)


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _versus(row: BudgetRow, runs: Sequence[Run], reference: Sequence[Run], epoch: int, margin: float) -> BudgetRow:
    """``row`` with the paired bootstrap against the reference's runs at the same seeds."""
    ref = {r.seed: r.correct_at(epoch) for r in reference}
    mine = {r.seed: r.correct_at(epoch) for r in runs}
    seeds = sorted(s for s in set(ref) & set(mine) if ref[s] is not None and mine[s] is not None)
    if not seeds:
        return row
    # seeds keeps only the seeds where neither is None
    mine_correct = np.stack([cast(np.ndarray, mine[s]) for s in seeds])
    ref_correct = np.stack([cast(np.ndarray, ref[s]) for s in seeds])
    result = stats.compare_paired(mine_correct, ref_correct, margin)
    return BudgetRow(
        **{
            **asdict(row),
            "diff": result.diff,
            "diff_ci": (result.ci_low, result.ci_high),
            "vs_reference": result.verdict,
        }
    )
