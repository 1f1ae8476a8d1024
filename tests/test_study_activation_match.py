"""Study ``activation-match``: the judge on made-up outcomes, and one tiny tuned run."""

from __future__ import annotations

import pytest

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.activation_match import Outcome, judge
from initlab.studies.grid import judge_across


def outcome(activation, verdict, diff=-0.02):
    rec, alt = ("he_normal", "xavier_uniform") if activation == "relu" else ("xavier_uniform", "he_normal")
    return Outcome(activation, rec, alt, 0.9, 0.9 + diff, diff, (diff - 0.01, diff + 0.01), verdict)


# --- the judge, on made-up measurements (no training) --------------------------------------------------


def test_supported_only_when_every_setting_and_activation_agrees():
    made_up = {
        "sgd, 5 epochs": [outcome("sigmoid", "worse"), outcome("relu", "worse")],
        "adam, 20 epochs": [outcome("sigmoid", "worse"), outcome("relu", "worse")],
    }
    judgement, per_activation = judge(made_up)
    assert judgement.verdict == "supported" and judgement.flips == []
    assert per_activation["adam, 20 epochs"] == {"sigmoid": "supported", "relu": "supported"}


def test_a_setting_that_flips_makes_it_partly_and_is_named():
    # The case: sigmoid under Xavier is slow (He better at 5 epochs) but equal at 20.
    made_up = {
        "sgd, 5 epochs": [outcome("sigmoid", "better", +0.4), outcome("relu", "equivalent", 0.0)],
        "sgd, 20 epochs": [outcome("sigmoid", "equivalent", 0.0), outcome("relu", "equivalent", 0.0)],
        "adam, 5 epochs": [outcome("sigmoid", "worse"), outcome("relu", "worse")],
    }
    judgement, per_activation = judge(made_up)
    assert judgement.verdict == "partly"
    assert judgement.flips == ["adam, 5 epochs"]  # the two SGD settings say "not supported"
    assert per_activation["sgd, 5 epochs"]["sigmoid"] == "contradicted"
    assert judgement.by_setting["sgd, 20 epochs"] == "not supported"


def test_not_supported_when_no_setting_supports():
    made_up = {"sgd, 20 epochs": [outcome("sigmoid", "inconclusive"), outcome("relu", "better", 0.02)]}
    judgement, per_activation = judge(made_up)
    assert judgement.verdict == "not supported"
    assert per_activation["sgd, 20 epochs"] == {"sigmoid": "inconclusive", "relu": "contradicted"}


def test_judge_across_rules():
    assert judge_across({"a": "supported", "b": "supported"}).verdict == "supported"
    assert judge_across({"a": "not supported"}).verdict == "not supported"
    mixed = judge_across({"a": "supported", "b": "partly", "c": "supported"})
    assert mixed.verdict == "partly" and mixed.flips == ["b"]
    with pytest.raises(ValueError, match="setting verdicts"):
        judge_across({"a": "maybe"})


# --- one tiny tuned run through the engine --------------------------------------------------------------

TINY = {
    "activations": ["sigmoid", "relu"],
    "width": 32,
    "epochs": 4,
    "budgets": [1],
    "seeds": 2,
    "optimizers": ["sgd"],
    "sgd_lr_grid": [0.05, 0.2],
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("activation_match")
    ctx = StudyContext(out=root, store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    return get("activation-match").run(ctx)


def test_tiny_run_is_judged_per_setting_from_tuned_comparisons(result):
    ev = result.evidence
    assert list(ev["judgement"]["by_setting"]) == ["sgd, 1 epochs", "sgd, 4 epochs"]
    for label, outs in ev["outcomes"].items():
        assert [o["activation"] for o in outs] == ["sigmoid", "relu"]
        for o in outs:
            assert o["ci"][0] <= o["diff"] <= o["ci"][1]
            assert o["diff"] == pytest.approx(o["alternative_acc"] - o["recommended_acc"], abs=1e-9)
        for act in ("sigmoid", "relu"):
            for scheme in ("xavier_uniform", "he_normal"):
                assert ev["accuracy"][label][act][scheme]["lr"] in (0.05, 0.2)
    assert result.verdict in ("supported", "not supported", "partly")
    assert len(result.experiments) == 2 and result.figures[0].exists()


def test_activation_match_needs_the_articles_pair(tmp_path):
    ctx = StudyContext(
        out=tmp_path,
        store=tmp_path / "s.sqlite",
        progress=False,
        overrides={**TINY, "schemes": ["xavier_uniform", "lecun_normal"]},
    )
    with pytest.raises(UserError, match="must include xavier_uniform and he_normal"):
        get("activation-match").run(ctx)
