"""Study ``symmetry`` on tiny settings: zero/constant init keeps one unit per layer; gradients at init."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from initlab.errors import UserError
from initlab.studies import StudyContext, get
from initlab.studies.symmetry import distinct_units

TINY = {
    "width": 8,
    "depth": 2,
    "epochs": 2,
    "seeds": 3,
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
    units = result.evidence["distinct_units"]
    assert set(units["zeros"]) == {"fc1", "fc2"}
    for scheme in ("zeros", "constant"):
        assert all(counts == [1, 1, 1] for counts in units[scheme].values()), (scheme, units[scheme])
    assert all(counts == [8, 8, 8] for counts in units["he_normal"].values()), units["he_normal"]
    assert result.evidence["symmetric_runs_one_unit_per_layer"] is True
    assert result.evidence["random_runs_all_units_distinct"] is True


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
    moved = result.evidence["weights_moved_in_training"]
    assert moved["zeros"] == 0 and moved["constant"] == 3 and moved["he_normal"] == 3


def test_accuracy_gap_and_verdict(result):
    acc = result.evidence["accuracy"]
    # all-zero weights: the net outputs its bias, one class for every input (digits: 10 balanced classes)
    assert all(a <= 0.12 for a in acc["zeros"]["per_seed"])
    assert acc["he_normal"]["mean"] > 0.55  # measured 0.598 (validation split, param_generator streams)
    assert result.effect == pytest.approx(acc["he_normal"]["mean"] - acc["zeros"]["mean"])
    assert result.ci[0] > 0 and result.verdict == "supported"
    assert result.evidence["reproduced_stored_runs"] == "9/9"  # the weights come from the stored runs
    assert result.figures and result.figures[0].read_bytes()[:4] == b"\x89PNG"


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
        "seeds=2",
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
    assert payload["evidence"]["distinct_units"]["zeros"] == {"fc1": [1, 1]}
    assert (tmp_path / "out" / "index.md").exists() and (tmp_path / "out" / "symmetry" / "symmetry.png").exists()


def test_list_settings_accept_lists_single_values_and_comma_strings():
    from initlab.studies.settings import as_list, seed_list

    assert as_list(["a", "b"]) == ["a", "b"] and as_list(30) == [30]
    assert as_list("relu, tanh") == ["relu", "tanh"]
    assert as_list("he_normal(mode=fan_out, a=0),zeros") == ["he_normal(mode=fan_out, a=0)", "zeros"]
    assert seed_list(3) == (0, 1, 2) and seed_list([4, 7]) == (4, 7) and seed_list("10-12") == (10, 11, 12)
