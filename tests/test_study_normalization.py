"""Study ``normalization``: the normalized MLP, the spread statistics, and the evidence."""

from __future__ import annotations

import pytest
import torch

from initlab.errors import UserError
from initlab.models import build
from initlab.studies import StudyContext, get
from initlab.studies.normalization import bootstrap_spreads, normalized_mlp, spreads

TINY = {
    "schemes": ["he_normal", "random_normal"],
    "norms": ["none", "batch"],
    "seeds": 2,
    "epochs": 2,
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


def test_spreads_and_bootstrap():
    acc = {"a": {0: 0.9, 1: 0.7}, "b": {0: 0.5, 1: 0.5}}
    std, rng = spreads(acc, [0, 1])
    assert rng == pytest.approx(0.3)
    assert std == pytest.approx(0.3 / 2**0.5)
    assert spreads(acc, [0, 0])[1] == pytest.approx(0.4)  # a resample may repeat a seed
    boot = bootstrap_spreads({"none": acc}, [0, 1], 300)
    assert {round(r, 9) for r in boot["none"]["range"]} == {0.2, 0.3, 0.4}  # seeds {1,1}, {0,1}, {0,0}
    assert boot == bootstrap_spreads({"none": acc}, [0, 1], 300)  # the resamples come from a fixed generator


def test_batch_norm_rescues_the_tiny_scheme_and_shrinks_the_spread(result):
    acc = result.evidence["accuracy"]
    # N(0, 0.01^2) in 4 ReLU layers: the signal shrinks ~1e-4 per layer; BatchNorm rescales it back
    assert acc["none"]["random_normal"]["mean"] < 0.2  # measured 0.10
    assert acc["batch"]["random_normal"]["mean"] > 0.8  # measured 0.93
    std = result.evidence["spread_std"]
    # measured 0.55 and 0.054 (with the validation split and param_generator streams)
    assert std["none"]["value"] > 0.3 and std["batch"]["value"] < 0.07
    assert result.effect == pytest.approx(std["none"]["value"] - std["batch"]["value"])
    assert result.ci[0] > 0.3
    assert "he_normal" in result.evidence["best_minus_worst"]["batch"]["near_best"]
    assert result.figures[0].exists()


def test_norms_must_start_with_none(tmp_path):
    ctx = StudyContext(
        out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, "norms": ["batch", "none"]}
    )
    with pytest.raises(UserError, match="'none' first"):
        get("normalization").run(ctx)


def test_degenerate_schemes_are_those_near_chance_somewhere():
    from initlab.studies.normalization import degenerate_schemes

    means = {
        "none": {"he_normal": 0.97, "positive": 0.12, "random_normal": 0.10},
        "batch": {"he_normal": 0.97, "positive": 0.55, "random_normal": 0.93},
    }
    assert degenerate_schemes(means, chance=0.1) == ["positive", "random_normal"]
    assert degenerate_schemes({"none": {"he_normal": 0.97}}, chance=0.1) == []


def test_spread_is_also_reported_without_degenerate_schemes(result):
    ev = result.evidence
    assert "random_normal" in ev["degenerate"]  # at chance without normalization in the tiny run
    assert set(ev["spread_without_degenerate"]) == {"none", "batch"}
