"""Study ``depth``: the judge on made-up gaps, the gradient helpers, and one tiny tuned run."""

from __future__ import annotations

import math

import pytest

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.depth import Gap, gradient_profile, judge, judge_gaps, log10_ratio

# --- the judge, on made-up measurements (no training) --------------------------------------------------


def gap(depth, verdict, per_seed, diff=None):
    d = sum(per_seed) / len(per_seed) if diff is None else diff
    return Gap("relu", depth, 0.5, 0.5 + d, 1e-3, 1e-3, d, (d - 0.02, d + 0.02), verdict, tuple(per_seed), (5, 5))


def test_judge_gaps_needs_he_better_at_depth_and_a_gap_that_grows():
    assert judge_gaps("better", None) == "supported"  # one depth: the deep verdict decides
    assert judge_gaps("better", [0.5, 0.6, 0.55]) == "supported"
    assert judge_gaps("better", [0.01, -0.02, 0.0]) == "partly"  # a gap, but it does not grow with depth
    assert judge_gaps("equivalent", [0.3, 0.4, 0.35]) == "partly"  # grows, but not "better" at the deepest
    assert judge_gaps("inconclusive", [0.01, -0.02, 0.0]) == "not supported"
    assert judge_gaps("worse", None) == "not supported"
    assert judge_gaps("better", [0.5]) == "partly"  # one seed: no interval, so growth is not shown


def test_judge_is_supported_only_when_every_setting_agrees_and_names_the_flips():
    deep_sgd = {2: gap(2, "equivalent", [0.0, 0.01, -0.01]), 30: gap(30, "better", [0.6, 0.7, 0.65])}
    # The case: with Adam at the long budget the gap closes (equivalent, no growth).
    closed = {2: gap(2, "equivalent", [0.0, 0.01, -0.01]), 30: gap(30, "equivalent", [0.01, -0.01, 0.0])}
    all_hold = judge({"sgd, 5 epochs": deep_sgd, "adam, 5 epochs": deep_sgd})
    assert all_hold.verdict == "supported" and all_hold.flips == []
    mixed = judge(
        {"sgd, 5 epochs": deep_sgd, "sgd, 20 epochs": deep_sgd, "adam, 5 epochs": deep_sgd, "adam, 20 epochs": closed}
    )
    assert mixed.verdict == "partly" and mixed.flips == ["adam, 20 epochs"]
    assert mixed.by_setting["adam, 20 epochs"] == "not supported"
    assert judge({"sgd, 20 epochs": closed}).verdict == "not supported"


def test_judge_reads_the_deepest_and_shallowest_depth_whatever_the_order():
    by_depth = {30: gap(30, "better", [0.5, 0.6, 0.4]), 10: gap(10, "better", [0.4, 0.5, 0.3]),
                2: gap(2, "equivalent", [0.0, 0.0, 0.01])}  # fmt: skip
    assert judge({"s": by_depth}).by_setting == {"s": "supported"}
    # Growth is deepest minus shallowest per seed: equal gaps at 2 and 30 do not grow.
    flat = {2: gap(2, "better", [0.5, 0.6, 0.4]), 30: gap(30, "better", [0.5, 0.6, 0.4])}
    assert judge({"s": flat}).by_setting == {"s": "partly"}


def test_gradient_profile_and_ratio_helpers():
    signal = [
        {"name": "fc1", "grad_var": 1e-6},
        {"name": "fc2", "grad_var": None},
        {"name": "fc3", "grad_var": 1e-3},
        {"name": "out", "grad_var": 5.0},
    ]
    prof = gradient_profile(signal)
    assert prof[0] == 1e-6 and math.isnan(prof[1]) and prof[2] == 1e-3 and len(prof) == 3
    assert log10_ratio(prof[0], prof[-1]) == pytest.approx(-3.0)
    assert math.isnan(log10_ratio(0.0, 1.0)) and math.isnan(log10_ratio(math.nan, 1.0))


# --- one tiny tuned run through the engine --------------------------------------------------------------

# 30 hidden layers of 64 ReLU units on digits, SGD (momentum 0.9) with lr tuned over {1e-3, 3e-3},
# 4 epochs (41 steps each after the validation split), judged at 2 and 4 epochs.
TINY = {
    "depths": [30],
    "activations": ["relu"],
    "width": 64,
    "epochs": 4,
    "budgets": [2],
    "seeds": 3,
    "optimizers": ["sgd"],
    "sgd_lr_grid": [1e-3, 3e-3],
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    ctx = StudyContext(out=root, store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    return get("depth").run(ctx)


def test_thirty_layer_relu_net_stalls_under_xavier_and_trains_under_he(result):
    ev = result.evidence
    assert list(ev["judgement"]["by_setting"]) == ["sgd, 2 epochs", "sgd, 4 epochs"]
    g = ev["gaps"]["sgd, 4 epochs"]["relu"]["30"]
    assert g["xavier_acc"] <= 0.15 and g["he_acc"] >= 0.3, g
    assert list(g["trained"]) == [0, 3] and g["verdict"] == "better"
    assert g["xavier_lr"] in (1e-3, 3e-3) and g["he_lr"] in (1e-3, 3e-3)
    assert g["ci"][0] <= g["diff"] <= g["ci"][1]
    assert sum(g["per_seed"]) / 3 == pytest.approx(g["he_acc"] - g["xavier_acc"], abs=1e-9)
    assert result.ci[0] > 0 and result.effect == pytest.approx(g["diff"])
    assert ev["judgement"]["by_setting"]["sgd, 4 epochs"] == "supported"  # one depth: the deep verdict decides
    assert result.figures[0].exists() and len(result.experiments) == 1


def test_gradient_ratio_at_init_follows_he_et_al(result):
    ratio = result.evidence["log10_grad_ratio_first_over_last"]["relu"]["30"]
    # ReLU halves the backward second moment per square Xavier layer: 2^-(L-1) over L = 30 layers
    assert ratio["xavier_uniform"] == pytest.approx(-29 * math.log10(2), abs=1.5)
    assert abs(ratio["he_normal"]) < 1.0  # He keeps it: factor fan_out * (2 / fan_in) / 2 = 1


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"activations": ["tanh"]}, "must include 'relu'"),
        ({"depths": [0, 2]}, "depths: hidden-layer counts >= 1"),
        ({"depths": ["deep"]}, "depths: hidden-layer counts >= 1"),
        ({"sgd_lr_grid": [0.0]}, "sgd_lr_grid"),
        ({"budgets": [9]}, "budgets: 9 is beyond epochs=4"),
        ({"optimizers": ["rmsprop"]}, "optimizers"),
    ],
)
def test_bad_settings_name_the_setting_and_write_nothing(tmp_path, override, message):
    ctx = StudyContext(
        out=tmp_path / "out", store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, **override}
    )
    with pytest.raises(UserError, match=message):
        get("depth").run(ctx)
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "out").exists()
