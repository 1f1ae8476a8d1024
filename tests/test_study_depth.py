"""Study ``depth`` on tiny settings: a 30-layer ReLU net stalls under Xavier and trains under He."""

from __future__ import annotations

import math

import pytest

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.depth import gradient_profile, log10_ratio

# 30 hidden layers of 64 ReLU units on digits, SGD lr 0.001 (momentum 0.9), 6 epochs = 246 steps
# (the validation split leaves 41 per epoch; at 4 epochs seed 0 under He was still at 0.15).
TINY = {"depths": [30], "activations": ["relu"], "width": 64, "epochs": 6, "seeds": 3, "optimizers": ["sgd"]}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    ctx = StudyContext(out=root, store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    return get("depth").run(ctx)


def test_thirty_layer_relu_net_stalls_under_xavier_and_trains_under_he(result):
    acc = result.evidence["accuracy"]["relu"]["30"]
    assert all(a <= 0.15 for a in acc["xavier_uniform"]), acc
    assert all(a >= 0.3 for a in acc["he_normal"]), acc
    assert result.evidence["trained_runs"]["relu"]["30"] == {"xavier_uniform": 0, "he_normal": 3}
    assert result.ci[0] > 0 and result.verdict == "supported"  # one depth: the deep gap alone decides


def test_gradient_ratio_at_init_follows_he_et_al(result):
    ratio = result.evidence["log10_grad_ratio_first_over_last"]["relu"]["30"]
    # ReLU halves the backward second moment per square Xavier layer: 2^-(L-1) over L = 30 layers
    assert ratio["xavier_uniform"] == pytest.approx(-29 * math.log10(2), abs=1.5)
    assert abs(ratio["he_normal"]) < 1.0  # He keeps it: factor fan_out * (2 / fan_in) / 2 = 1


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


def test_depth_requires_relu(tmp_path):
    ctx = StudyContext(
        out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, "activations": ["tanh"]}
    )
    with pytest.raises(UserError, match="must include 'relu'"):
        get("depth").run(ctx)


def test_judge_gaps_on_made_up_gaps():
    from initlab.studies.depth import judge_gaps

    big, none = [0.6, 0.7, 0.65], [0.01, -0.02, 0.0]
    assert judge_gaps(big, None) == "supported"  # one depth: the deep gap decides
    assert judge_gaps(big, [0.5, 0.6, 0.55]) == "supported"
    assert judge_gaps(big, [0.01, -0.02, 0.0]) == "partly"  # a gap, but it does not grow with depth
    assert judge_gaps(none, [0.01, -0.02, 0.0]) == "not supported"
