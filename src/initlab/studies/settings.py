"""Helpers shared by the studies: reading settings (``--set`` values) and pairing results."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from initlab import checks
from initlab.errors import UserError
from initlab.studies.base import mean_ci


def seed_list(value: Any) -> tuple[int, ...]:
    """A ``seeds`` setting: a count (6 -> 0..5), a string ``"3,5"``/``"10-19"``, or a list.

    At least two seeds: every verdict rests on a confidence interval over seeds, which one
    seed cannot give.
    """
    from initlab.sweep.config import parse_seeds

    if isinstance(value, (list, tuple)):
        if not value or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value):
            raise UserError(f"seeds: need integers >= 0; got {value!r}")
        seeds = tuple(value)
    elif isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"seeds: a count, 'A-B', 'a,b,c' or a list; got {value!r}")
    else:
        seeds = parse_seeds(str(value))
    if len(seeds) < 2:
        raise UserError(f"seeds: a study needs at least 2 seeds for its confidence interval; got {value!r}")
    return seeds


def as_list(value: Any) -> list:
    """A list setting: a list as given, one value, or a comma-separated string (commas inside
    parentheses, as in ``he_normal(mode=fan_out, a=0)``, do not split)."""
    from initlab.schemes import split_specs

    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    return split_specs(value)


def int_list(name: str, value: Any, minimum: int) -> list[int]:
    """Distinct integers >= ``minimum``, sorted, from a list or one value."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise checks.fail(name, value, f"a list of integers >= {minimum}")
    try:
        return sorted({checks.integer(name, v, minimum=minimum) for v in values})
    except UserError:
        raise checks.fail(name, value, f"a list of integers >= {minimum}") from None


def positive_list(name: str, value: Any) -> list[float]:
    """Distinct finite numbers > 0, sorted, from a list or one value."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise checks.fail(name, value, "a list of finite numbers > 0")
    try:
        return sorted({checks.positive(name, v) for v in values})
    except UserError:
        raise checks.fail(name, value, "a list of finite numbers > 0") from None


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def finite_mean(values: Any) -> float:
    """Mean of the finite values (None and NaN left out); NaN when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def paired_effect(a: list[float], b: list[float]) -> dict[str, Any]:
    """``{"mean", "ci", "p", "n"}``: mean of ``a[i] - b[i]`` over finite pairs (paired by seed), its
    Student t 95% CI and the paired t-test p-value."""
    from initlab.stats import paired_test

    diffs = [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if not diffs:
        return {"mean": math.nan, "ci": [math.nan, math.nan], "p": math.nan, "n": 0}
    mean, lo, hi = mean_ci(diffs)
    _, p = paired_test(a, b, "t")
    return {"mean": mean, "ci": [lo, hi], "p": p, "n": len(diffs)}


def tuned_runs(data: Any, budget: int) -> dict[str, dict[int, Any]]:
    """scheme -> {seed: ``analysis.Run``} at the lr selected on validation for ``budget``
    (``ReportData.tuning``; a fixed-lr comparison: its one lr)."""
    selected = data.tuning.selected[budget]
    out: dict[str, dict[int, Any]] = {}
    for r in data.all_runs:
        if r.scheme in selected and r.lr == selected[r.scheme]:
            out.setdefault(r.scheme, {})[r.seed] = r
    return out


def tuned_by_seed(data: Any, budget: int) -> dict[str, dict[int, float]]:
    """scheme -> {seed: test accuracy after ``budget`` epochs} at the lr selected for that budget:
    per-seed accuracies that pair across comparisons which share seeds."""
    return {
        scheme: {seed: r.test_curve.get(budget, math.nan) for seed, r in by_seed.items()}
        for scheme, by_seed in tuned_runs(data, budget).items()
    }


def paired_versus(a: Mapping[int, Any], b: Mapping[int, Any], budget: int, margin: float) -> Any:
    """``stats.PairedDifference`` of accuracy(a) − accuracy(b) after ``budget``: runs (seed -> Run,
    possibly from two comparisons on the same data) paired by seed, bootstrap over seeds and test
    examples, with the equivalence verdict at ``margin``. NaN and ``inconclusive`` when the runs
    kept no per-example correctness at ``budget``."""
    import numpy as np

    from initlab import stats

    correct_a = {s: r.correct_at(budget) for s, r in a.items()}
    correct_b = {s: r.correct_at(budget) for s, r in b.items()}
    seeds = sorted(s for s in set(a) & set(b) if correct_a[s] is not None and correct_b[s] is not None)
    if not seeds:
        return stats.PairedDifference(math.nan, math.nan, math.nan, "inconclusive", 0, 0)
    return stats.compare_paired(
        np.stack([correct_a[s] for s in seeds]), np.stack([correct_b[s] for s in seeds]), margin
    )
