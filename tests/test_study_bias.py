"""Study ``bias``: its evidence on tiny settings, the unit counter, and the CLI's JSON contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.bias import BiasEffect, distinct_units, judge, judge_setting, random_weights_for

WIDTH = 16
TINY = {
    "activations": ["tanh"],
    "seeds": 2,
    "epochs": 8,
    "budgets": [2],
    "width": WIDTH,
    "sgd_lr_grid": [0.05],
    "adam_lr_grid": [0.003],
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bias")
    ctx = StudyContext(out=tmp / "out", store=tmp / "s.sqlite", progress=False, overrides=TINY)
    ctx.out.mkdir()
    return get("bias").run(ctx)


def test_distinct_units_as_the_bias_study_uses_them(gen):
    """The counter (shared with the symmetry study) must tell units apart by their bias alone."""
    row = torch.randn(1, 5, generator=gen)
    weight = torch.cat([row, row, row * 2, torch.zeros(1, 5)])
    assert distinct_units(weight) == 3
    assert distinct_units(weight, torch.tensor([0.0, 0.5, 0.0, 0.0])) == 4  # the bias tells units 0 and 1 apart
    assert distinct_units(torch.zeros(7, 3), torch.full((7,), 0.1)) == 1
    assert distinct_units(weight + 1e-9) == 3  # rounding-level differences do not make a new unit


def test_random_weights_follow_the_activation():
    assert random_weights_for("relu") == "he_normal"
    assert random_weights_for("tanh") == "xavier_uniform"


def test_zero_weights_keep_one_unit_unless_biases_are_random(result):
    units = result.evidence["zero_weight_units"]["tanh"]
    # zero weights, equal biases: every unit of a layer gets the same update forever
    for bias in ("zeros", "constant(val=0.1)"):
        for layer in units[bias]["distinct_per_layer"]:
            assert layer == [1, 1]
    assert units["zeros"]["rank_per_layer"] == [[0, 0], [0, 0]]  # no weight ever moves
    assert units["constant(val=0.1)"]["rank_per_layer"] == [[1, 1], [1, 1]]  # one shared row
    # random biases make every unit different, and the layer learns more than one feature
    assert units["normal(std=0.1)"]["distinct_per_layer"][0] == [WIDTH, WIDTH]
    assert min(units["normal(std=0.1)"]["rank_per_layer"][0]) > 1


def test_accuracy_evidence(result):
    effects = result.evidence["effects"]
    assert set(effects) == {"sgd, 2 epochs", "sgd, 8 epochs", "adam, 2 epochs", "adam, 8 epochs"}
    final = {(e["weights"], e["bias"]): e for e in effects["sgd, 8 epochs"]}
    # zero weights and zero biases: only the output bias learns, i.e. a constant prediction
    assert final[("zero", "normal(std=0.1)")]["zero_bias_acc"] < 0.15
    assert final[("zero", "normal(std=0.1)")]["diff"] > 0.2  # 0.31 measured
    assert final[("zero", "normal(std=0.1)")]["verdict"] == "better"
    for bias in ("constant(val=0.1)", "normal(std=0.1)"):
        assert final[("random", bias)]["acc"] > 0.8 and final[("random", bias)]["zero_bias_acc"] > 0.8
    # with random weights the bias barely matters; the headline effect is that difference
    assert abs(result.effect) < 0.05
    assert result.effect == pytest.approx(final[("random", "normal(std=0.1)")]["diff"])
    assert result.evidence["retrained_accuracy_max_gap"] == 0.0  # the rerun for the weights matches the store
    assert result.figures and result.figures[0].exists() and result.figures[0].suffix == ".png"
    assert len(result.experiments) == 6  # one stored comparison per (optimizer, bias)


# --- the judge, on made-up measurements (no training) --------------------------------------------------

RANDOM = "normal(std=0.1)"


def effect(activation: str, weights: str, verdict: str, diff: float = 0.0) -> BiasEffect:
    return BiasEffect(activation, weights, RANDOM, 0.9 + diff, 0.9, diff, (diff - 0.01, diff + 0.01), verdict)


def test_judge_supported_only_when_the_random_bias_helps_every_activation_with_random_weights():
    both = [effect("relu", "random", "better", 0.02), effect("tanh", "random", "better", 0.03)]
    assert judge_setting(both, RANDOM) == "supported"
    # one activation helped, the other not: not pooled into one number, hence partly
    assert judge_setting([both[0], effect("tanh", "random", "equivalent")], RANDOM) == "partly"
    # no help with random weights, help with zero weights for every activation: partly
    zero_only = [effect(a, "random", "equivalent") for a in ("relu", "tanh")]
    zero_only += [effect(a, "zero", "better", 0.3) for a in ("relu", "tanh")]
    assert judge_setting(zero_only, RANDOM) == "partly"
    tanh_not_helped = zero_only[:3] + [effect("tanh", "zero", "equivalent")]
    assert judge_setting(tanh_not_helped, RANDOM) == "not supported"
    # a constant bias's effect does not count for the random bias
    other = BiasEffect("relu", "random", "constant(val=0.1)", 0.95, 0.9, 0.05, (0.04, 0.06), "better")
    assert judge_setting([other, effect("relu", "random", "worse", -0.02)], RANDOM) == "not supported"


def test_judge_across_settings_names_the_flips():
    helps = [effect("relu", "random", "better", 0.02)]
    flat = [effect("relu", "random", "equivalent")]
    judgement = judge({"sgd, 5 epochs": helps, "sgd, 20 epochs": flat, "adam, 20 epochs": flat}, RANDOM)
    assert judgement.verdict == "partly" and judgement.flips == ["sgd, 5 epochs"]
    assert judge({"sgd, 20 epochs": flat, "adam, 20 epochs": flat}, RANDOM).verdict == "not supported"


def test_bias_baseline_must_come_first(tmp_path):
    ctx = StudyContext(
        out=tmp_path,
        store=tmp_path / "s.sqlite",
        progress=False,
        overrides={**TINY, "biases": ["normal(std=0.1)", "zeros"]},
    )
    with pytest.raises(UserError, match="zero baseline first"):
        get("bias").run(ctx)


def test_cli_json_contract(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "initlab",
            "study",
            "bias",
            "--set",
            "seeds=2",
            "--set",
            "epochs=1",
            "--set",
            "width=8",
            "--set",
            "budgets=[1]",
            "--set",
            'optimizers=["sgd"]',
            "--set",
            "sgd_lr_grid=[0.05]",
            "--set",
            'activations=["relu"]',
            "--set",
            'biases=["zeros","normal(std=0.1)"]',
            "--json",
            "--out",
            str(tmp_path / "out"),
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {"study", "verdict", "claim", "evidence"} <= set(out)
    assert out["study"] == "bias"
    assert out["verdict"] in ("supported", "not supported", "partly")
    assert "random initialization for biases" in out["claim"].lower()
    assert set(out["evidence"]["zero_weight_units"]["relu"]) == {"zeros", "normal(std=0.1)"}
    assert (tmp_path / "out" / "bias" / "bias.png").exists()
    assert (tmp_path / "out" / "index.md").read_text().count("## `bias`") == 1
