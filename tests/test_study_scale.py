"""Study ``scale``: the judge on made-up runs (no training), and one tiny end-to-end grid
(SGD and Adam at one fixed rate each, budgets 2 and 3 epochs)."""

from __future__ import annotations

import pytest
import torch

import initlab
from initlab.errors import UserError
from initlab.schemes import scheme_from_spec
from initlab.studies import StudyContext, get
from initlab.studies.scale import (
    SeedCurve,
    budget_row,
    early_epoch,
    factor_label,
    halves,
    judge,
    judge_setting,
    scheme_for,
    steps_per_epoch,
    unstable_later,
)

FACTORS = [0.25, 1, 4, 16]
# early_steps 41: the early point is epoch 1 (41 steps on digits less its validation split), before both budgets
TINY = {
    "width": 32,
    "depth": 2,
    "factors": FACTORS,
    "sgd_lrs": [0.05],
    "adam_lrs": [0.01],
    "epochs": 3,
    "budgets": [2, 3],
    "seeds": 3,
    "early_steps": 41,
}
SETTINGS = ["sgd lr 0.05, 2 epochs", "sgd lr 0.05, 3 epochs", "adam lr 0.01, 2 epochs", "adam lr 0.01, 3 epochs"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    ctx = StudyContext(out=root, store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    return get("scale").run(ctx)


# --- the judge, on made-up runs ---------------------------------------------------------------


def curve(acc, loss=None, diverged=None, per_epoch=10):
    loss = loss or [1.0 - a for a in acc]
    return SeedCurve(tuple(per_epoch * (i + 1) for i in range(len(acc))), tuple(acc), tuple(loss), diverged)


def test_budget_row_reads_only_the_epochs_up_to_the_budget():
    curves = [
        curve([0.80, 0.90, 0.95, 0.60]),  # drops 35 points in epoch 4
        curve([0.80, 0.90, 0.91, 0.92], diverged=35),  # diverged in epoch 4 (steps 31..40)
        curve([0.10, 0.10, 0.15, 0.10]),  # never learns: failed (< 2 x chance)
    ]
    at3 = budget_row(curves, early=1, budget=3, chance=0.1)
    assert at3["final_acc"] == [0.95, 0.91, 0.15]
    assert at3["drop_from_peak"] == pytest.approx([0.0, 0.0, 0.0])
    assert at3["diverged_step"] == [None, None, None] and at3["diverged"] == 0
    assert at3["failed"] == 1 and at3["early_step"] == 10 and at3["early_acc"] == [0.80, 0.80, 0.10]
    at4 = budget_row(curves, early=1, budget=4, chance=0.1)
    assert at4["drop_from_peak"] == pytest.approx([0.35, 0.0, 0.05])
    assert at4["diverged_step"] == [None, 35, None] and at4["diverged"] == 1
    assert at4["failed"] == 1  # the diverged run is counted as diverged, not failed


def test_unstable_later_counts_only_drops_after_a_good_start():
    made_up = {
        "early_acc": [0.90, 0.90, 0.50, 0.88, 0.91],  # seed 2 starts badly
        "drop_from_peak": [0.00, 0.05, 0.40, 0.01, 0.00],
        "diverged_step": [None, None, None, None, 300],
    }
    # He's early mean 0.9: seeds 0, 1, 3, 4 started well; 1 dropped 5 points, 4 diverged at step 300 > 82
    assert unstable_later(made_up, he_early_mean=0.9, early_step=82) == 2
    # a divergence before the early step is a bad start, not a later one
    assert unstable_later({**made_up, "diverged_step": [None, None, None, None, 40]}, 0.9, 82) == 1


def made_up_row(early_loss, early_acc, final_acc, drop, diverged_step=None, failed=0):
    n = len(early_loss)
    steps = diverged_step or [None] * n
    return {
        "early_loss": early_loss,
        "early_acc": early_acc,
        "early_step": 20,
        "final_acc": final_acc,
        "drop_from_peak": drop,
        "diverged_step": steps,
        "diverged": sum(s is not None for s in steps),
        "failed": failed,
    }


HE = made_up_row([0.50, 0.52, 0.48, 0.51, 0.49], [0.90] * 5, [0.95] * 5, [0.0] * 5)
# f = 2: a lower early loss on every seed (faster start), then 3 seeds drop 10 points (unstable later)
FAST_THEN_UNSTABLE = made_up_row(
    [0.30, 0.33, 0.29, 0.31, 0.30], [0.92] * 5, [0.85, 0.85, 0.85, 0.95, 0.95], [0.10, 0.10, 0.10, 0.0, 0.0]
)
FAST_AND_STABLE = made_up_row([0.30, 0.33, 0.29, 0.31, 0.30], [0.92] * 5, [0.95] * 5, [0.0] * 5)
# f = 8: bad from the start (early accuracy at chance, every seed failed): neither faster nor "later"
BAD = made_up_row([9.0, 8.0, 9.5, 8.7, 9.1], [0.10] * 5, [0.10] * 5, [0.0] * 5, failed=5)


def test_halves_and_the_setting_verdict_on_made_up_rows():
    both = halves({1.0: HE, 2.0: FAST_THEN_UNSTABLE, 8.0: BAD})
    assert both.faster == [2.0] and both.after_good_start == [2.0] and both.bad_from_start == [8.0]
    assert both.late == {1.0: 0, 2.0: 3, 8.0: 0}
    assert both.tests_a[2.0]["p_holm"] >= both.tests_a[2.0]["p"]  # Holm over the two factors > 1
    assert judge_setting(both) == "supported"
    only_a = halves({1.0: HE, 2.0: FAST_AND_STABLE, 8.0: BAD})
    assert (only_a.a, only_a.b, judge_setting(only_a)) == (True, False, "partly")
    neither = halves({1.0: HE, 8.0: BAD})
    assert judge_setting(neither) == "not supported" and neither.worse == [8.0]
    # one seed of five dipping is within the noise: reported as isolated, not counted (half B needs half)
    one_dip = made_up_row(FAST_AND_STABLE["early_loss"], [0.92] * 5, [0.85] + [0.95] * 4, [0.10] + [0.0] * 4)
    isolated = halves({1.0: HE, 2.0: one_dip})
    assert (isolated.late[2.0], isolated.b, isolated.isolated) == (1, False, [2.0])
    # the same drop when He drops as often is no evidence for "unstable later"
    he_unstable = made_up_row(HE["early_loss"], HE["early_acc"], HE["final_acc"], [0.10, 0.10, 0.10, 0.0, 0.0])
    assert halves({1.0: he_unstable, 2.0: FAST_THEN_UNSTABLE}).b is False


def test_the_study_verdict_holds_only_when_every_setting_agrees():
    both = halves({1.0: HE, 2.0: FAST_THEN_UNSTABLE})
    only_a = halves({1.0: HE, 2.0: FAST_AND_STABLE})
    assert judge({"sgd lr 0.05, 20 epochs": both, "adam lr 0.01, 20 epochs": both}).verdict == "supported"
    mixed = judge({"a, 5 epochs": only_a, "a, 20 epochs": both, "b, 20 epochs": both})
    assert mixed.verdict == "partly" and mixed.flips == ["a, 5 epochs"]
    assert mixed.by_setting["a, 5 epochs"] == "partly"


def test_the_early_epoch_is_the_epoch_end_nearest_the_early_step():
    # digits: 1437 training images less 144 for validation, batch 32 -> 41 steps per epoch
    assert steps_per_epoch(1437, 32, 0.1) == 41
    assert early_epoch(41, 100, 20) == 2 and early_epoch(41, 41, 20) == 1 and early_epoch(41, 5000, 3) == 3


# --- one tiny real grid -----------------------------------------------------------------------


def test_factor_one_is_exactly_he_normal():
    a, b = torch.empty(64, 50), torch.empty(64, 50)
    scheme_from_spec(scheme_for(1.0)).init_(a, generator=torch.Generator().manual_seed(3))
    initlab.init_(b, "he_normal", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert scheme_for(0.0625) == "variance_scaling(distribution=normal, mode=fan_in, scale=0.0078125)"
    assert [factor_label(f) for f in (0.0625, 0.5, 1.0, 16.0)] == ["1/16", "1/2", "1", "16"]


def test_gradient_norm_at_init_grows_with_the_scale(result):
    grads = result.evidence["grad_norm_at_init"]
    for seed in range(3):
        norms = [grads[factor_label(f)][seed] for f in FACTORS]
        assert norms == sorted(norms), norms
    # a 2-hidden-layer ReLU net: d loss / d W_l carries the two other weight matrices, ~f^2 (softmax aside)
    ratio = grads["16"][0] / grads["1"][0]
    assert ratio > 30, ratio


def test_the_grid_runs_every_fixed_rate_and_budget(result):
    ev = result.evidence
    assert list(ev["per_setting"]) == SETTINGS and ev["lr_tuned"] is False
    assert ev["fixed_learning_rates"] == {"sgd": [0.05], "adam": [0.01]}
    assert ev["early_step"] == 41 and len(result.experiments) == 2
    sgd2, sgd3 = ev["per_setting"][SETTINGS[0]], ev["per_setting"][SETTINGS[1]]
    # half A is read at the early step: the same for both budgets of one rate
    assert sgd2["half_a_faster_start"]["tests"] == sgd3["half_a_faster_start"]["tests"]
    he2, he3 = sgd2["per_factor"]["1"], sgd3["per_factor"]["1"]
    assert he2["early_acc"] == he3["early_acc"] and he2["final_acc"] != he3["final_acc"]
    assert min(he3["final_acc"]) > 0.6
    big = sgd3["per_factor"]["16"]
    assert max(big["final_acc"]) < 0.3  # every unit dies or the logits saturate: near chance
    # f=16 at SGD lr 0.05 fails from the first epoch: that is not "unstable later" (no good start to lose)
    half_b = sgd3["half_b_unstable_later"]
    assert "16" in half_b["bad_from_the_start"] and "16" not in half_b["unstable_after_good_start"]
    for label, setting in ev["per_setting"].items():
        holds = [setting["half_a_faster_start"]["holds"], setting["half_b_unstable_later"]["holds"]]
        expected = "supported" if all(holds) else "partly" if any(holds) else "not supported"
        assert setting["verdict"] == ev["judgement"]["by_setting"][label] == expected
    verdicts = set(ev["judgement"]["by_setting"].values())
    assert result.verdict == (
        verdicts.pop() if verdicts <= {"supported", "not supported"} and len(verdicts) == 1 else "partly"
    )
    assert len(result.tables) == 3 and result.figures[0].exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"factors": [0.5, 2]}, "must include 1"),
        ({"early_steps": 100}, "budgets: each must be later than the early epoch 2"),
        ({"optimizers": ["sgd", "rmsprop"]}, "optimizers: sgd and/or adam"),
        ({"adam_lrs": [0.0, 1e-3]}, "adam_lrs"),
        ({"budgets": [2, 5]}, "budgets: 5 is beyond epochs=3"),
        ({"early_steps": 0}, "early_steps: an integer >= 1"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, overrides, message):
    store = tmp_path / "s.sqlite"
    ctx = StudyContext(out=tmp_path, store=store, progress=False, overrides={**TINY, **overrides})
    with pytest.raises(UserError, match=message):
        get("scale").run(ctx)
    assert not store.exists()
