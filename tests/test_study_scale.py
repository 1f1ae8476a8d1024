"""Study ``scale`` on tiny settings: gradient norms grow with the weight scale; large weights fail."""

from __future__ import annotations

import pytest
import torch

import initlab
from initlab.errors import UserError
from initlab.schemes import scheme_from_spec
from initlab.studies import StudyContext, get
from initlab.studies.scale import factor_label, scheme_for

FACTORS = [0.25, 1, 4, 16]
TINY = {"width": 32, "depth": 2, "factors": FACTORS, "lrs": [0.05], "epochs": 2, "seeds": 3}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    ctx = StudyContext(out=root, store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    return get("scale").run(ctx)


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


def test_large_weights_end_worse_and_the_halves_are_judged_separately(result):
    ev = result.evidence
    # digits less its validation split (1293 train), batch 32: 41 steps per epoch, epoch 2 is nearest 100
    assert ev["early_step"] == {"0.05": 82}
    he, big = ev["per_lr"]["0.05"]["1"], ev["per_lr"]["0.05"]["16"]
    assert min(he["final_acc"]) > 0.6
    assert max(big["final_acc"]) < 0.3  # every unit dies or the logits saturate: near chance
    # f=16 fails from the first epoch: that is not "unstable later" (no good start to lose)
    half_b = ev["half_b_unstable_later"]
    assert "f=16 (lr 0.05)" in half_b["diverged_or_failed_where_he_did_not"]
    assert "f=16 (lr 0.05)" in half_b["bad_from_the_start"]
    assert "f=16 (lr 0.05)" not in half_b["unstable_after_good_start"]
    assert half_b["holds"] == bool(half_b["unstable_after_good_start"])
    half_a = ev["half_a_faster_start"]
    assert set(half_a["tests"]) == {"f=4 (lr 0.05)", "f=16 (lr 0.05)"}
    holds = [half_a["holds"], half_b["holds"]]
    assert result.verdict == ("supported" if all(holds) else "partly" if any(holds) else "not supported")
    t = half_a["tests"]["f=4 (lr 0.05)"]
    assert t["p_holm"] >= t["p"]


def test_factors_must_include_he_and_a_larger_one(tmp_path):
    ctx = StudyContext(
        out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, "factors": [0.5, 2]}
    )
    with pytest.raises(UserError, match="must include 1"):
        get("scale").run(ctx)


def test_unstable_later_counts_only_drops_after_a_good_start():
    from initlab.studies.scale import unstable_later

    made_up = {
        "early_acc": [0.90, 0.90, 0.50, 0.88, 0.91],  # seed 2 starts badly
        "drop_from_peak": [0.00, 0.05, 0.40, 0.01, 0.00],
        "diverged_step": [None, None, None, None, 300],
    }
    # He's early mean 0.9: seeds 0, 1, 3, 4 started well; 1 dropped 5 points, 4 diverged at step 300 > 82
    assert unstable_later(made_up, he_early_mean=0.9, early_step=82) == 2
    # a divergence before the early step is a bad start, not a later one
    assert unstable_later({**made_up, "diverged_step": [None, None, None, None, 40]}, 0.9, 82) == 1
