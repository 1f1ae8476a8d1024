"""Statistics for comparing schemes over seeds: summaries, paired tests, Holm, ranks, speed.

Conventions: accuracies are fractions in [0, 1]; ``std`` is the sample standard deviation
(ddof = 1); the 95% CI is Student's t interval for the mean; paired tests pair runs by seed,
since seed s fixes the data order for every scheme alike (DESIGN.md, Experiment design).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

PAIRED_METHODS = ("wilcoxon", "t")


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    median: float
    min: float
    max: float


def summarize(values: Iterable[float], confidence: float = 0.95,
              bounds: tuple[float, float] | None = None) -> Summary:
    """n, mean, std (ddof=1), t confidence interval, median, min, max of finite values.

    .. math:: \\bar x \\pm t_{n-1,\\,(1+c)/2}\\, s / \\sqrt{n}

    With n = 1 the std and the interval are NaN (one run says nothing about spread).
    ``bounds`` clips the interval to the quantity's range (accuracies: (0, 1)); with few seeds
    the t interval is wide and would otherwise leave it.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    if n > 1:
        half = float(_st.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
        lo, hi = mean - half, mean + half
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    else:
        lo = hi = float("nan")
    return Summary(n, mean, std, lo, hi, float(np.median(x)), float(x.min()), float(x.max()))


def paired_test(a: Sequence[float], b: Sequence[float], method: str = "wilcoxon") -> tuple[float, float]:
    """(mean of a − b, two-sided p-value) for paired samples.

    ``wilcoxon``: the signed-rank test (exact for small n without ties, as scipy chooses);
    ``t``: the paired t-test. When every difference is zero the p-value is 1 (no evidence of a
    difference), where scipy would return NaN or refuse.
    """
    if method not in PAIRED_METHODS:
        raise ValueError(f"paired test method must be one of {', '.join(PAIRED_METHODS)}; got {method!r}")
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples must have equal length; got {a_arr.size} and {b_arr.size}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    d = a_arr[keep] - b_arr[keep]
    if d.size == 0:
        return float("nan"), float("nan")
    mean_diff = float(d.mean())
    if d.size < 2 or np.all(d == 0):
        return mean_diff, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "t":
            if np.all(d == d[0]):  # constant nonzero difference: zero variance, certain sign
                return mean_diff, 0.0
            p = float(_st.ttest_rel(a_arr[keep], b_arr[keep]).pvalue)
        else:
            p = float(_st.wilcoxon(a_arr[keep], b_arr[keep]).pvalue)
    return mean_diff, p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN.

    .. math:: \\tilde p_{(i)} = \\max_{j \\le i} \\min\\{1, (m - j + 1)\\, p_{(j)}\\}
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    running = 0.0
    for k, idx in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - k) * p[idx]))
        out[idx] = running
    return out.tolist()


def ranks(scores: Mapping[str, float], higher_is_better: bool = True) -> dict[str, float]:
    """Rank by score, 1 = best (highest, or lowest when ``higher_is_better`` is False: an MSE, a
    loss); ties share the average rank; NaN ranks last."""
    names = list(scores)
    sign = 1.0 if higher_is_better else -1.0
    vals = np.array([sign * scores[n] if math.isfinite(scores[n]) else -np.inf for n in names])
    r = _st.rankdata(-vals, method="average")
    return {n: float(x) for n, x in zip(names, r)}


def steps_to_target(steps: Sequence[int], accuracies: Sequence[float], target: float | None,
                    higher_is_better: bool = True) -> int | None:
    """The first step (at an evaluation point) where the metric reaches ``target`` (at least it;
    at most it when lower is better); None if never or without a target."""
    if target is None:
        return None
    for step, acc in zip(steps, accuracies):
        if acc is not None and math.isfinite(acc) and (acc >= target if higher_is_better else acc <= target):
            return int(step)
    return None


@dataclass(frozen=True)
class SchemeSummary:
    """One row of ``initlab compare``'s summary table."""

    scheme: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    median: float
    min: float
    max: float
    diverged: int
    steps_to_target: float | None  # median over the runs that reached it
    reached_target: int
    rank: float
    diff_vs_reference: float | None
    p_value: float | None
    p_holm: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def compare_schemes(
    accuracy: Mapping[str, Mapping[int, float]],
    *,
    reference: str | None = None,
    diverged: Mapping[str, int] | None = None,
    steps: Mapping[str, Sequence[int | None]] | None = None,
    method: str = "wilcoxon",
    higher_is_better: bool = True,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> list[SchemeSummary]:
    """The summary table: per scheme, the metric over seeds, rank, and a paired test vs ``reference``.

    The metric is an accuracy by default; for a metric where lower is better (an MSE, a loss)
    pass ``higher_is_better=False`` (ranks follow it; differences stay ``scheme − reference``,
    so a negative difference is then an improvement) and its ``bounds`` (None: unbounded).

    Args:
        accuracy: scheme -> {seed: final test accuracy}.
        reference: the scheme every other is tested against (paired by seed, Holm-corrected
            over the other schemes); None or absent -> no tests.
        diverged: scheme -> number of diverged runs.
        steps: scheme -> steps to target per run (None when not reached).
    """
    diverged = diverged or {}
    steps = steps or {}
    summaries = {s: summarize(acc.values(), bounds=bounds) for s, acc in accuracy.items()}
    rank = ranks({s: summ.mean for s, summ in summaries.items()}, higher_is_better)
    tests: dict[str, tuple[float, float]] = {}
    if reference is not None and reference in accuracy:
        ref = accuracy[reference]
        for s, acc in accuracy.items():
            if s == reference:
                continue
            seeds = sorted(set(acc) & set(ref))
            tests[s] = paired_test([acc[k] for k in seeds], [ref[k] for k in seeds], method)
    adjusted = dict(zip(tests, holm([p for _, p in tests.values()])))
    rows = []
    for s, summ in summaries.items():
        reached = [x for x in steps.get(s, []) if x is not None]
        diff, p = tests.get(s, (None, None))
        rows.append(SchemeSummary(
            scheme=s, **asdict(summ), diverged=int(diverged.get(s, 0)),
            steps_to_target=float(np.median(reached)) if reached else None, reached_target=len(reached),
            rank=rank[s], diff_vs_reference=(0.0 if s == reference else diff),
            p_value=p, p_holm=adjusted.get(s),
        ))
    return rows
