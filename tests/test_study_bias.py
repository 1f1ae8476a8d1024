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
from initlab.studies.bias import distinct_units, random_weights_for

WIDTH = 16
TINY = {"activations": ["tanh"], "seeds": 2, "epochs": 8, "width": WIDTH}


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
    acc = result.evidence["accuracy"]["tanh"]
    # zero weights and zero biases: only the output bias learns, i.e. a constant prediction
    assert acc["zero"]["zeros"]["mean"] < 0.15
    assert acc["zero"]["normal(std=0.1)"]["minus_zero_bias"]["mean"] > 0.2  # 0.42 measured
    for bias in ("zeros", "constant(val=0.1)", "normal(std=0.1)"):
        assert acc["random"][bias]["mean"] > 0.8
    # with random weights the bias barely matters; the headline effect is that difference
    assert abs(result.effect) < 0.05
    assert result.effect == pytest.approx(result.evidence["random_weights_effect"]["mean"])
    assert result.evidence["retrained_accuracy_max_gap"] == 0.0  # the rerun for the weights matches the store
    assert result.figures and result.figures[0].exists() and result.figures[0].suffix == ".png"
    assert len(result.experiments) == 3  # one stored comparison per bias


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
