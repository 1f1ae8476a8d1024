"""Study ``normalization``: the normalized MLP, the spread statistics, the judge on made-up
outcomes, and one tiny tuned run."""

from __future__ import annotations

import math

import pytest
import torch

from initlab.errors import UserError
from initlab.models import build
from initlab.studies import StudyContext, get
from initlab.studies.normalization import (
    Contrast,
    NormOutcome,
    SettingOutcome,
    bootstrap_spreads,
    degenerate_schemes,
    judge,
    judge_setting,
    normalized_mlp,
    spreads,
)

# --- the model ------------------------------------------------------------------------------------------


def test_without_norm_it_is_the_plain_mlp():
    plain = build(normalized_mlp, input_shape=(1, 8, 8), num_classes=10, width=16, depth=3, norm="none", seed=3)
    reference = build("mlp", input_shape=(1, 8, 8), num_classes=10, width=16, depth=3, seed=3)
    shapes = [(n, p.shape) for n, p in plain.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in reference.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), reference.parameters()))


def test_batch_norm_makes_the_output_blind_to_the_weight_scale(gen):
    model = build(normalized_mlp, input_shape=(20,), num_classes=5, width=16, depth=3, norm="batch").train()
    x = torch.randn(64, 20, generator=gen)
    before = model(x)
    with torch.no_grad():
        for i in (1, 2, 3):
            getattr(model, f"fc{i}").weight.mul_(100.0)  # the bias shift is removed by the batch mean anyway
    assert torch.allclose(model(x), before, atol=1e-3)
    layer = build(normalized_mlp, input_shape=(20,), num_classes=5, width=16, depth=2, norm="layer")
    assert isinstance(layer.norm1, torch.nn.LayerNorm)
    with pytest.raises(UserError, match="norm='group'"):
        normalized_mlp((20,), 5, norm="group")


# --- spreads and degenerate schemes (pure) --------------------------------------------------------------


def test_spreads_and_bootstrap():
    acc = {"a": {0: 0.9, 1: 0.7}, "b": {0: 0.5, 1: 0.5}}
    std, rng = spreads(acc, [0, 1])
    assert rng == pytest.approx(0.3)
    assert std == pytest.approx(0.3 / 2**0.5)
    assert spreads(acc, [0, 0])[1] == pytest.approx(0.4)  # a resample may repeat a seed
    boot = bootstrap_spreads(acc, [0, 1], 300)
    assert {round(r, 9) for r in boot["range"]} == {0.2, 0.3, 0.4}  # seeds {1,1}, {0,1}, {0,0}
    assert boot == bootstrap_spreads(acc, [0, 1], 300)  # the resamples come from a fixed generator
    # the same resamples for another scheme set: its ranges pair with these draw by draw
    other = bootstrap_spreads({"a": acc["a"], "c": {0: 0.9, 1: 0.7}}, [0, 1], 300)
    assert other["range"] == [0.0] * 300
    assert [round(r, 9) for r in bootstrap_spreads({"a": acc["a"], "b": acc["b"]}, [0, 1], 300)["range"]] == [
        round(r, 9) for r in boot["range"]
    ]


def test_degenerate_schemes_are_those_below_the_floor_under_some_norm():
    val = {
        "none": {"he_normal": 0.97, "positive": 0.45, "random_normal": 0.10},
        "batch": {"he_normal": 0.97, "positive": 0.15, "random_normal": 0.93},
    }
    assert degenerate_schemes(val, floor=0.2) == ["positive", "random_normal"]
    assert degenerate_schemes(val, floor=0.12) == ["random_normal"]  # below, not at: 0.15 trains a little
    assert degenerate_schemes({"none": {"he_normal": 0.97, "x": math.nan}}, floor=0.2) == ["x"]
    assert degenerate_schemes({"none": {"he_normal": 0.97}}, floor=0.2) == []


# --- the judge, on made-up outcomes (no training) ------------------------------------------------------

MATTERS = 0.02


def contrast(diff, half=0.01, best="he_normal", worst="positive"):
    return Contrast(best, worst, diff, (diff - half, diff + half), "better")


def norm_outcome(norm, every, clean):
    """Only the contrasts matter to the judge; the rest is filler."""
    nan3 = (math.nan, math.nan, math.nan)
    return NormOutcome(norm, {}, {}, {}, nan3, nan3, nan3, nan3, every, clean)


def setting(label, degenerate=(), **norms):
    return SettingOutcome(label, tuple(degenerate), {n: norm_outcome(n, *c) for n, c in norms.items()})


def test_supported_when_it_matters_under_every_norm_among_schemes_that_train():
    o = setting(
        "sgd, 10 epochs",
        none=(contrast(0.3), contrast(0.05)),
        batch=(contrast(0.06), contrast(0.04)),
        layer=(contrast(0.05), contrast(0.05)),
    )
    assert judge_setting(o, MATTERS) == "supported"


def test_a_spread_made_only_by_degenerate_schemes_is_partly():
    # The case: positive fails under BatchNorm, the other schemes are within 1 point.
    o = setting(
        "sgd, 10 epochs",
        degenerate=["positive"],
        none=(contrast(0.85), contrast(0.06)),
        batch=(contrast(0.78), contrast(0.01, best="orthogonal", worst="sparse")),
        layer=(contrast(0.04), contrast(0.03)),
    )
    assert judge_setting(o, MATTERS) == "partly"
    # the CI's lower end decides, not the point estimate
    near = setting("x", none=(contrast(0.3), contrast(0.05)), batch=(contrast(0.05), contrast(0.025, half=0.01)))
    assert judge_setting(near, MATTERS) == "partly"
    # fewer than two schemes left without the degenerate ones: it cannot matter there
    gone = setting("x", none=(contrast(0.3), None), batch=(contrast(0.3), None))
    assert judge_setting(gone, MATTERS) == "partly"


def test_not_supported_when_it_does_not_matter_even_without_normalization():
    o = setting(
        "adam, 10 epochs",
        none=(contrast(0.015), contrast(0.015)),
        batch=(contrast(0.5), contrast(0.5)),  # whatever happens under a norm
    )
    assert judge_setting(o, MATTERS) == "not supported"
    nan = Contrast("a", "b", math.nan, (math.nan, math.nan), "inconclusive")
    assert judge_setting(setting("x", none=(nan, nan), batch=(nan, nan)), MATTERS) == "not supported"


def test_the_study_verdict_holds_across_settings_and_names_the_flips():
    good = dict(none=(contrast(0.3), contrast(0.05)), batch=(contrast(0.05), contrast(0.05)))
    only_degenerate = dict(none=(contrast(0.3), contrast(0.05)), batch=(contrast(0.8), contrast(0.0)))
    made_up = {
        "sgd, 3 epochs": setting("sgd, 3 epochs", **good),
        "sgd, 10 epochs": setting("sgd, 10 epochs", ["positive"], **only_degenerate),
        "adam, 3 epochs": setting("adam, 3 epochs", **good),
    }
    judgement = judge(made_up, MATTERS)
    assert judgement.verdict == "partly" and judgement.flips == ["sgd, 10 epochs"]
    assert judge({k: made_up[k] for k in ("sgd, 3 epochs", "adam, 3 epochs")}, MATTERS).verdict == "supported"


# --- one tiny tuned run through the engine --------------------------------------------------------------

TINY = {
    "schemes": ["he_normal", "random_normal", "xavier_uniform"],
    "norms": ["none", "batch"],
    "seeds": 2,
    "epochs": 2,
    "budgets": [1],
    "optimizers": ["sgd"],
    "sgd_lr_grid": [0.01, 0.05],
    "width": 32,
    "depth": 4,
    "bootstrap": 200,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("normalization")
    ctx = StudyContext(out=tmp / "out", store=tmp / "s.sqlite", progress=False, overrides=TINY)
    ctx.out.mkdir()
    return get("normalization").run(ctx)


def test_tiny_run_is_judged_per_setting_with_and_without_degenerate_schemes(result):
    ev = result.evidence
    assert list(ev["judgement"]["by_setting"]) == ["sgd, 1 epochs", "sgd, 2 epochs"]
    final = ev["outcomes"]["sgd, 2 epochs"]
    # N(0, 0.01^2) in 4 ReLU layers: the signal shrinks ~1e-4 per layer and it stays at chance;
    # BatchNorm rescales it back: it is degenerate (without norm) and named
    assert final["norms"]["none"]["accuracy"]["random_normal"] < 0.2
    assert final["norms"]["batch"]["accuracy"]["random_normal"] > 0.5
    assert "random_normal" in final["degenerate"] and "random_normal" in ev["degenerate_named"]
    for n in ("none", "batch"):
        x = final["norms"][n]
        assert set(x["lr"].values()) <= {0.01, 0.05}
        assert x["contrast"]["ci"][0] <= x["contrast"]["diff"] <= x["contrast"]["ci"][1]
        assert "random_normal" not in (x["contrast_clean"]["best"], x["contrast_clean"]["worst"])
        assert x["range_clean"][0] <= x["range"][0] + 1e-12  # fewer schemes: never a wider range
        assert x["std"][1] <= x["std"][0] <= x["std"][2]
    # without normalization the degenerate scheme makes the whole spread
    assert final["norms"]["none"]["range"][0] > 0.5 > final["norms"]["none"]["range_clean"][0]
    assert result.verdict in ("supported", "not supported", "partly")
    assert result.figures[0].exists() and len(result.experiments) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"norms": ["batch", "none"]}, "'none' first"),
        ({"norms": ["none", "group"]}, "'none' first"),
        ({"schemes": ["he_normal"]}, "at least 2 distinct schemes"),
        ({"matters": 1.5}, "matters: a number in"),
        ({"degenerate": -1}, "degenerate: a number in"),
        ({"bootstrap": 10}, "bootstrap: an integer >= 100"),
        ({"budgets": [5]}, "budgets: 5 is beyond epochs=2"),
        ({"sgd_lr_grid": [0.0]}, "sgd_lr_grid"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, override, message):
    ctx = StudyContext(out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, **override})
    with pytest.raises(UserError, match=message):
        get("normalization").run(ctx)
    assert not (tmp_path / "s.sqlite").exists()  # nothing written
