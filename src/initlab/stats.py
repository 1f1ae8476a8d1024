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

from initlab import checks

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


def summarize(values: Iterable[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> Summary:
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
    checks.choice("method", method, PAIRED_METHODS)
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


def steps_to_target(
    steps: Sequence[int], accuracies: Sequence[float], target: float | None, higher_is_better: bool = True
) -> int | None:
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
        rows.append(
            SchemeSummary(
                scheme=s,
                **asdict(summ),
                diverged=int(diverged.get(s, 0)),
                steps_to_target=float(np.median(reached)) if reached else None,
                reached_target=len(reached),
                rank=rank[s],
                diff_vs_reference=(0.0 if s == reference else diff),
                p_value=p,
                p_holm=adjusted.get(s),
            )
        )
    return rows


# --- equivalence: paired bootstrap over seeds and test examples ------------------------------------

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class PairedDifference:
    """Mean paired difference in accuracy (a − b) with its bootstrap CI, and the verdict."""

    diff: float
    ci_low: float
    ci_high: float
    verdict: str
    n_seeds: int
    n_examples: int


def paired_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of accuracy(a) − accuracy(b) over seeds and test examples.

    ``correct_a[s, i]`` says whether scheme a's run with seed s classified test example i right;
    ``correct_b`` likewise, paired by seed (same data order) and example. Each resample draws
    seeds and test examples independently with replacement (a two-way, "pigeonhole" bootstrap
    of the crossed seeds × examples design, Owen 2007), so the interval holds both sources of
    error: training randomness (seeds) and the test set's own sampling error (a finite test set
    of n examples has a standard error of about sqrt(p(1−p)/n) on its own). The interval is the
    percentile interval of the resampled means. Draws come from
    ``derive_generator(seed, "paired_bootstrap")``: the same inputs give the same interval.

    .. math:: \\hat\\Delta^{*} = \\frac{1}{S n}\\sum_{s \\in S^{*}}\\sum_{i \\in I^{*}} (a_{s i} - b_{s i})
    """
    import torch

    from initlab.seeding import derive_generator

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be equal (seeds, examples) arrays; got {a.shape} and {b.shape}")
    d = torch.from_numpy(a.astype(np.float64) - b.astype(np.float64))
    n_seeds, n_examples = d.shape
    mean = float(d.mean())
    if n_seeds * n_examples == 1 or resamples < 1:
        return mean, float("nan"), float("nan")
    g = derive_generator(seed, "paired_bootstrap")
    values = []
    for start in range(0, resamples, 250):  # chunks keep the (B, n) count matrix small
        size = min(250, resamples - start)
        seed_idx = torch.randint(n_seeds, (size, n_seeds), generator=g)
        example_idx = torch.randint(n_examples, (size, n_examples), generator=g)
        counts = torch.zeros(size, n_examples, dtype=torch.float64).scatter_add_(
            1, example_idx, torch.ones(size, n_examples, dtype=torch.float64)
        )
        per_seed = d @ counts.T / n_examples  # (S, B): each seed's accuracy gap on the resampled examples
        values.append(per_seed.gather(0, seed_idx.T).mean(dim=0))
    boot = torch.cat(values).numpy()
    tail = (1 - confidence) / 2
    return mean, float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))


def equivalence_verdict(ci_low: float, ci_high: float, margin: float) -> str:
    """``equivalent`` when the CI lies inside (−margin, +margin) (two one-sided tests, TOST, each
    at 2.5% with a 95% CI: conservative); else ``better`` when it lies above 0, ``worse`` when
    below 0; else ``inconclusive`` (the data allow a difference beyond the margin, and none).

    Equivalence is tested first: a difference significantly different from 0 but smaller than
    the margin on both ends is practically nil, hence ``equivalent``.
    """
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    if -margin < ci_low and ci_high < margin:
        return "equivalent"
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "inconclusive"


def compare_paired(
    correct_a: np.ndarray, correct_b: np.ndarray, margin: float, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> PairedDifference:
    """``paired_bootstrap`` and ``equivalence_verdict`` in one record."""
    diff, lo, hi = paired_bootstrap(correct_a, correct_b, resamples=resamples, seed=seed)
    shape = np.shape(correct_a)
    return PairedDifference(diff, lo, hi, equivalence_verdict(lo, hi, margin), int(shape[0]), int(shape[1]))


def seeds_for_margin(std_diff: float, margin: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Seeds a TOST equivalence test needs to show |Δ| < ``margin`` when the true Δ is 0.

    With paired per-seed differences of standard deviation σ (measured: the std over seeds of
    acc(a) − acc(b)), the normal approximation (Chow, Shao & Wang 2008, §3.2.3) gives

    .. math:: n = \\left\\lceil \\frac{(z_{1-\\alpha} + z_{1-\\beta/2})^2\\, \\sigma^2}{\\delta^2} \\right\\rceil

    with power 1 − β. None when σ is not finite. The test set's own error adds to σ only
    through the seeds' differences, so a small test set needs more seeds.
    """
    if not math.isfinite(std_diff) or margin <= 0:
        return None
    z = _st.norm.ppf(1 - alpha) + _st.norm.ppf(1 - (1 - power) / 2)
    return max(2, math.ceil((z * std_diff / margin) ** 2))
