"""Statistics checked against scipy and hand-computed values on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from initlab import stats as S


def test_summary_matches_numpy_and_scipy_t_interval():
    x = [0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.89, 0.93, 0.92, 0.96]
    s = S.summarize(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert s.n == 10 and s.mean == pytest.approx(np.mean(x)) and s.std == pytest.approx(np.std(x, ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert (s.median, s.min, s.max) == (pytest.approx(0.925), 0.89, 0.96)


def test_summary_ignores_non_finite_and_handles_tiny_samples():
    s = S.summarize([0.5, float("nan"), None])
    assert s.n == 1 and s.mean == 0.5 and math.isnan(s.std) and math.isnan(s.ci_low)
    assert S.summarize([]).n == 0


def test_paired_tests_equal_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.9, 0.01, 10)
    b = a - rng.normal(0.01, 0.005, 10)
    diff, p = S.paired_test(a, b, "wilcoxon")
    assert diff == pytest.approx(np.mean(a - b))
    assert p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert S.paired_test(a, b, "t")[1] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert p < 0.01  # every difference positive: exact p = 2/2^10


def test_paired_test_edge_cases():
    assert S.paired_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1]) == (0.0, 1.0)
    assert S.paired_test([0.2, 0.2, 0.2], [0.1, 0.1, 0.1], "t")[1] == 0.0
    with pytest.raises(ValueError, match="method: got 'z'; expected one of wilcoxon, t"):
        S.paired_test([1], [1], "z")
    with pytest.raises(ValueError, match="equal length"):
        S.paired_test([1, 2], [1])


def test_holm_against_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert S.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = S.holm([0.5, float("nan"), 0.6])
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(1.0)


def test_ranks_best_first_with_ties_and_nan_last():
    r = S.ranks({"a": 0.9, "b": 0.95, "c": 0.9, "d": float("nan")})
    assert r == {"b": 1.0, "a": 2.5, "c": 2.5, "d": 4.0}


def test_steps_to_target():
    assert S.steps_to_target([10, 20, 30], [0.5, 0.8, 0.9], 0.8) == 20
    assert S.steps_to_target([10, 20], [0.5, float("nan")], 0.8) is None


def test_compare_schemes_table():
    acc = {
        "he_normal": {s: 0.95 + 0.001 * s for s in range(10)},
        "zeros": dict.fromkeys(range(10), 0.1),
        "xavier_uniform": {s: 0.95 + 0.001 * s - 0.002 for s in range(10)},
    }
    rows = {
        r.scheme: r
        for r in S.compare_schemes(
            acc,
            reference="he_normal",
            diverged={"zeros": 0},
            steps={"he_normal": [100] * 10, "zeros": [None] * 10, "xavier_uniform": [100, 200] * 5},
        )
    }
    assert rows["he_normal"].rank == 1 and rows["zeros"].rank == 3
    assert rows["he_normal"].p_value is None and rows["he_normal"].diff_vs_reference == 0.0
    assert rows["zeros"].diff_vs_reference == pytest.approx(0.10 - np.mean(list(acc["he_normal"].values())))
    raw = [rows["zeros"].p_value, rows["xavier_uniform"].p_value]
    assert [rows["zeros"].p_holm, rows["xavier_uniform"].p_holm] == pytest.approx(S.holm(raw))
    assert rows["zeros"].steps_to_target is None and rows["zeros"].reached_target == 0
    assert rows["xavier_uniform"].steps_to_target == 150.0


def test_interval_is_clipped_to_the_range_of_accuracy():
    wide = S.summarize([0.99, 0.40], bounds=(0.0, 1.0))
    raw = S.summarize([0.99, 0.40])
    assert raw.ci_high > 1 and raw.ci_low < 0  # two seeds: t(1) = 12.7 makes the raw interval huge
    assert (wide.ci_low, wide.ci_high) == (0.0, 1.0) and wide.mean == raw.mean


# --- equivalence verdicts on constructed data -------------------------------------------------------


def _correct(rate_by_seed, n=2000, seed=0):
    """Per-seed correctness vectors with exact accuracy rate_by_seed[s] (random positions)."""
    rng = np.random.default_rng(seed)
    rows = []
    for rate in rate_by_seed:
        row = np.zeros(n, dtype=bool)
        row[rng.choice(n, round(rate * n), replace=False)] = True
        rows.append(row)
    return np.array(rows)


def test_identical_schemes_are_equivalent_with_a_zero_difference():
    a = _correct([0.95] * 8)
    result = S.compare_paired(a, a.copy(), margin=0.005)
    assert result.diff == 0 and result.verdict == "equivalent"
    assert result.ci_low == 0 and result.ci_high == 0


def test_a_clear_gap_is_better_or_worse():
    a, b = _correct([0.95] * 8, seed=1), _correct([0.80] * 8, seed=2)
    better = S.compare_paired(a, b, margin=0.005)
    assert better.verdict == "better" and better.diff == pytest.approx(0.15)
    assert 0.10 < better.ci_low < 0.15 < better.ci_high < 0.20
    assert S.compare_paired(b, a, margin=0.005).verdict == "worse"


def test_independent_errors_on_a_small_test_set_are_inconclusive():
    # Same accuracy, errors on different examples, 200 test examples: the test set's sampling
    # error alone (about 2 points) spans the 0.5-point margin on both sides.
    a, b = _correct([0.9] * 4, n=200, seed=3), _correct([0.9] * 4, n=200, seed=4)
    result = S.compare_paired(a, b, margin=0.005)
    assert result.verdict == "inconclusive" and result.ci_low < -0.005 and result.ci_high > 0.005


def test_the_interval_includes_test_set_error_not_only_seed_error():
    # Every seed shows the same gap (seed std 0): a seeds-only t interval would be a point; the
    # bootstrap over examples still gives the ~1-point width of a 2000-example test set.
    a = np.repeat(_correct([0.91], seed=5), 6, axis=0)
    b = a.copy()
    flip = np.flatnonzero(a[0])[:20]  # b is wrong on 20 examples a gets right: a gap of 1 point
    b[:, flip] = False
    result = S.compare_paired(a, b, margin=0.02)
    assert result.diff == pytest.approx(0.01)
    assert result.ci_high - result.ci_low > 0.004
    assert result.verdict == "equivalent"  # within ±2 points, although different from 0


def test_the_bootstrap_is_reproducible_and_checks_shapes():
    a, b = _correct([0.9, 0.92], seed=6), _correct([0.91, 0.9], seed=7)
    assert S.paired_bootstrap(a, b) == S.paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="equal"):
        S.paired_bootstrap(a, b[:, :10])


@pytest.mark.parametrize(
    "lo, hi, verdict",
    [
        (-0.004, 0.004, "equivalent"),
        (0.001, 0.004, "equivalent"),
        (0.001, 0.02, "better"),
        (-0.03, -0.001, "worse"),
        (-0.01, 0.01, "inconclusive"),
        (float("nan"), 0.0, "inconclusive"),
    ],
)
def test_verdict_rules(lo, hi, verdict):
    assert S.equivalence_verdict(lo, hi, 0.005) == verdict


def test_seeds_for_margin_follows_the_normal_formula():
    # z_0.95 + z_0.9 = 1.645 + 1.282 = 2.926; sigma 0.01, margin 0.005 -> (2.926 * 2)^2 = 34.3 -> 35
    assert S.seeds_for_margin(0.01, 0.005) == 35
    assert S.seeds_for_margin(0.01, 0.01) == 9
    assert S.seeds_for_margin(float("nan"), 0.005) is None
