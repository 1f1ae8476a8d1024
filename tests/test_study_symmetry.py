"""Study ``symmetry`` on tiny settings: zero/constant init keeps one unit per layer; gradients at init."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.symmetry import Collapse, Gap, distinct_units, judge, judge_setting

TINY = {
    "width": 8,
    "depth": 2,
    "epochs": 2,
    "budgets": [1],
    "seeds": 3,
    "sgd_lr_grid": [0.05],
    "adam_lr_grid": [0.003],
    "symmetric": ["zeros", "constant"],
    "random": ["he_normal"],
    "grad_activations": ["relu", "sigmoid"],
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("symmetry")
    ctx = StudyContext(out=root / "out", store=root / "runs.sqlite", progress=False, overrides=dict(TINY))
    ctx.out.mkdir()
    return get("symmetry").run(ctx)


def test_zero_and_constant_init_leave_exactly_one_distinct_unit_per_hidden_layer(result):
    for optimizer in ("sgd", "adam"):
        units = result.evidence["distinct_units"][optimizer]
        assert set(units["zeros"]) == {"fc1", "fc2"}
        for scheme in ("zeros", "constant"):
            assert all(counts == [1, 1, 1] for counts in units[scheme].values()), (scheme, units[scheme])
        assert all(counts == [8, 8, 8] for counts in units["he_normal"].values()), units["he_normal"]
        collapse = result.evidence["collapse"][optimizer]
        assert collapse["one_unit"] is True and collapse["all_distinct"] is True


def test_zero_init_gives_gradient_only_where_phi_of_zero_lets_it(result):
    with_grad = result.evidence["params_with_gradient_at_init"]
    # ReLU: phi(0) = 0, so every weight gradient is exactly zero; only the output bias learns
    assert with_grad["relu"]["zeros"] == ["out.bias"]
    # sigmoid: phi(0) = 1/2 feeds the output layer, whose weights then get gradient
    assert with_grad["sigmoid"]["zeros"] == ["out.weight", "out.bias"]
    # constant init: equal logits send sum_k (p_k - y_k) = 0 back, the hidden layers get none at first
    assert with_grad["relu"]["constant"] == ["out.weight", "out.bias"]
    assert len(with_grad["relu"]["he_normal"]) == 6
    assert result.evidence["zero_init_weight_gradients_all_zero"] is True
    for optimizer in ("sgd", "adam"):  # Adam too: a zero gradient gives a zero Adam step
        moved = result.evidence["weights_moved_in_training"][optimizer]
        assert moved["zeros"] == 0 and moved["constant"] == 3 and moved["he_normal"] == 3


def test_accuracy_gap_and_verdict(result):
    gaps = result.evidence["gaps"]
    assert set(gaps) == {"sgd, 1 epochs", "sgd, 2 epochs", "adam, 1 epochs", "adam, 2 epochs"}
    # all-zero weights: the net outputs its bias, one class for every input (digits: 10 balanced classes)
    assert all(g["zeros_acc"] <= 0.12 for g in gaps.values())
    assert gaps["sgd, 2 epochs"]["reference_acc"] > 0.45  # measured 0.63 (3 seeds, lr 0.05)
    assert gaps["sgd, 2 epochs"]["vs_reference"] == "worse"
    assert result.effect == pytest.approx(-gaps["sgd, 2 epochs"]["diff"])
    assert result.ci[0] > 0 and result.verdict == "supported"
    assert result.evidence["reproduced_stored_runs"] == "18/18"  # the weights come from the stored runs
    assert result.figures and result.figures[0].read_bytes()[:4] == b"\x89PNG"


# --- the judge, on made-up measurements (no training) --------------------------------------------------

COLLAPSED = Collapse(one_unit=True, all_distinct=True, zeros_moved=0, members=10)


def gap(verdict: str, diff: float = -0.5) -> Gap:
    return Gap(0.1, 0.1 - diff, diff, (diff - 0.02, diff + 0.02), verdict)


def test_judge_supported_needs_collapse_a_worse_zero_init_and_frozen_weights():
    assert judge_setting(gap("worse"), COLLAPSED, True) == "supported"
    # the weights moved after all (or a weight had gradient at init): symmetry and accuracy hold, "inhibits" not
    assert judge_setting(gap("worse"), Collapse(True, True, 2, 10), True) == "partly"
    assert judge_setting(gap("worse"), COLLAPSED, False) == "partly"
    # no collapse, or zero init not worse: not supported
    assert judge_setting(gap("worse"), Collapse(False, True, 0, 10), True) == "not supported"
    assert judge_setting(gap("worse"), Collapse(True, False, 0, 10), True) == "not supported"
    assert judge_setting(gap("equivalent", 0.001), COLLAPSED, True) == "not supported"


def test_judge_names_the_settings_where_the_verdict_flips():
    gaps = {
        "sgd, 5 epochs": gap("worse"),
        "sgd, 20 epochs": gap("worse"),
        "adam, 20 epochs": gap("inconclusive", -0.01),
    }
    optimizer_of = {"sgd, 5 epochs": "sgd", "sgd, 20 epochs": "sgd", "adam, 20 epochs": "adam"}
    judgement = judge(gaps, {"sgd": COLLAPSED, "adam": COLLAPSED}, True, optimizer_of)
    assert judgement.verdict == "partly" and judgement.flips == ["adam, 20 epochs"]
    assert judge(
        {k: gap("worse") for k in gaps}, {"sgd": COLLAPSED, "adam": COLLAPSED}, True, optimizer_of
    ).verdict == ("supported")


def test_distinct_units_counts_clusters_within_tolerance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, generator=g), torch.randn(5, generator=g)
    w = torch.stack([a, a, b, a + 1e-9, b])
    assert distinct_units(w, tol=1e-6) == 2
    assert distinct_units(w, torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]), tol=1e-6) == 3  # the bias splits a twin
    assert distinct_units(torch.zeros(7, 3)) == 1
    assert distinct_units(torch.randn(6, 4, generator=g)) == 6
    with pytest.raises(UserError, match="weight of >= 2 dims"):
        distinct_units(torch.zeros(3))


def test_symmetry_requires_zero_init_in_the_symmetric_schemes(tmp_path):
    ctx = StudyContext(
        out=tmp_path, store=tmp_path / "s.sqlite", progress=False, overrides={**TINY, "symmetric": ["constant"]}
    )
    with pytest.raises(UserError, match="symmetric: must include 'zeros'"):
        get("symmetry").run(ctx)


def test_cli_study_symmetry_json_contract(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "initlab",
        "study",
        "symmetry",
        "--json",
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "runs.sqlite"),
        "--set",
        "width=4",
        "--set",
        "depth=1",
        "--set",
        "epochs=1",
        "--set",
        "budgets=[1]",
        "--set",
        "seeds=2",
        "--set",
        'optimizers=["sgd"]',
        "--set",
        "sgd_lr_grid=[0.05]",
        "--set",
        'grad_activations=["relu"]',
        "--set",
        'random=["he_normal"]',
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert {"study", "verdict", "claim", "evidence"} <= set(payload)
    assert payload["study"] == "symmetry"
    assert payload["verdict"] in ("supported", "not supported", "partly")
    assert "inhibits gradient descent" in payload["claim"]
    assert payload["evidence"]["distinct_units"]["sgd"]["zeros"] == {"fc1": [1, 1]}
    assert (tmp_path / "out" / "index.md").exists() and (tmp_path / "out" / "symmetry" / "symmetry.png").exists()


def test_list_settings_accept_lists_single_values_and_comma_strings():
    from initlab.studies.settings import as_list, seed_list

    assert as_list(["a", "b"]) == ["a", "b"] and as_list(30) == [30]
    assert as_list("relu, tanh") == ["relu", "tanh"]
    assert as_list("he_normal(mode=fan_out, a=0),zeros") == ["he_normal(mode=fan_out, a=0)", "zeros"]
    assert seed_list(3) == (0, 1, 2) and seed_list([4, 7]) == (4, 7) and seed_list("10-12") == (10, 11, 12)
