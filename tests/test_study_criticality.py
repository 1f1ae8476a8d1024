"""Study ``criticality``: the grid's inside/outside split, the depth-matched effect, the evidence."""

from __future__ import annotations

import math

import pytest

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.criticality import Effect, bias_scheme, depth_matched_effect, judge, trainable_depth, weight_scheme

# sigma_w2 = 0.5 (6 xi_c = 7.1) and 8 (28.3) put depth 32 outside, the near-critical 1.76 inside
TINY = {
    "depths": [2, 32],
    "sigma_w2": [0.5, 1.76, 8.0],
    "seeds": 2,
    "epochs": 4,
    "width": 24,
    "budgets": [1],
    "optimizers": ["sgd"],
    "sgd_lr_grid": [0.005],
    "curve_points": 2,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("criticality")
    ctx = StudyContext(out=tmp / "out", store=tmp / "s.sqlite", progress=False, overrides=TINY)
    ctx.out.mkdir()
    return get("criticality").run(ctx)


def test_schemes_are_the_mean_field_distributions():
    assert weight_scheme(1.5) == "variance_scaling(distribution=normal, mode=fan_in, scale=1.5)"
    assert bias_scheme(0.05) == f"normal(std={math.sqrt(0.05)!r})"
    assert bias_scheme(0.0) == "zeros"


def test_trainable_depth_is_longest_near_the_critical_line():
    cache: dict[float, float] = {}
    small, critical, large = (trainable_depth(s, 0.05, cache) for s in (0.5, 1.76, 8.0))
    assert 5 < small < 10 and 20 < large < 40  # 6 xi_c = 7.1 and 28.3 (Schoenholz et al. 2017, fig. 2)
    assert critical > 1000
    assert set(cache) == {0.5, 1.76, 8.0}


def test_depth_matched_effect_uses_only_depths_with_both_sides():
    acc = {2: {1.0: {0: 0.9}, 2.0: {0: 0.9}}, 30: {1.0: {0: 0.1}, 2.0: {0: 0.7}}}
    inside = {2: {1.0: True, 2.0: True}, 30: {1.0: False, 2.0: True}}
    per_seed, depths = depth_matched_effect(acc, inside, (0,))
    assert depths == [30]  # depth 2 has no outside cell: it would only add depth to the contrast
    assert per_seed == [pytest.approx(0.6)]


def test_accuracy_is_higher_inside_six_xi_c(result):
    ev = result.evidence
    assert ev["inside"]["32"] == {"0.5": False, "1.76": True, "8": False}
    assert all(ev["inside"]["2"].values())
    acc = ev["mean_accuracy"]["sgd, 4 epochs"]["32"]
    # measured: 0.5 -> 0.10 (chance), 8 -> 0.10, 1.76 -> 0.64
    assert acc["1.76"] - max(acc["0.5"], acc["8"]) > 0.3
    assert result.effect > 0.3
    final = ev["effects"]["sgd, 4 epochs"]
    assert all(e > 0.2 for e in final["per_seed"])  # every seed, not only on average (2 seeds: CI too wide)
    assert final["depths"] == [32]
    assert set(ev["effects"]) == {"sgd, 1 epochs", "sgd, 4 epochs"}
    assert result.figures[0].exists()


def effect(lo: float, hi: float) -> Effect:
    return Effect([lo, hi], (lo + hi) / 2, (lo, hi), [32])


def test_judge_on_made_up_effects():
    assert judge({"sgd, 2 epochs": effect(0.1, 0.3), "adam, 8 epochs": effect(0.05, 0.2)}).verdict == "supported"
    assert judge({"sgd, 8 epochs": effect(-0.1, 0.3)}).verdict == "not supported"  # CI reaches 0
    flipped = judge(
        {"sgd, 2 epochs": effect(0.1, 0.3), "sgd, 8 epochs": effect(0.1, 0.2), "adam, 8 epochs": effect(-0.05, 0.02)}
    )
    assert flipped.verdict == "partly" and flipped.flips == ["adam, 8 epochs"]


def test_grid_that_does_not_straddle_the_line_is_refused(tmp_path):
    ctx = StudyContext(
        out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, "depths": [2], "sigma_w2": [1.76]}
    )
    with pytest.raises(UserError, match="both sides of 6 xi_c"):
        get("criticality").run(ctx)
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything was trained
