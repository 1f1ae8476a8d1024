"""Study depth-frontier: the judge on made-up measurements, the theory helpers, and a tiny real run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from initlab.studies.depth_frontier import fit_power_law, judge, six_xi_c


def row(activation, scheme, depth, acc, seed=0):
    return {"activation": activation, "scheme": scheme, "depth": depth, "seed": seed, "test_acc": acc}


def test_judge_finds_each_frontier_and_supports_the_claim_when_the_init_decides():
    rows = [
        row("tanh", "auto", 10, 0.95),
        row("tanh", "auto", 100, 0.93),
        row("tanh", "auto", 1000, 0.90),
        row("tanh", "xavier", 10, 0.94),
        row("tanh", "xavier", 100, 0.15),
        row("tanh", "xavier", 1000, 0.10),
        # One seed above the threshold at depth 100 keeps the scheme "training" there.
        row("tanh", "torch", 10, 0.90),
        row("tanh", "torch", 100, 0.10),
        row("tanh", "torch", 100, 0.5, seed=1),
        row("tanh", "torch", 1000, 0.10),
    ]
    out = judge(rows, classes=10)
    assert out["frontier"]["tanh"] == {"auto": None, "xavier": 100, "torch": 1000}
    assert out["verdict"] == "supported"
    assert out["effect"] == pytest.approx(0.80) and out["effect_where"] == "tanh, depth 1000"


def test_judge_does_not_support_the_claim_when_every_scheme_behaves_alike():
    trains = [row("relu", s, d, 0.9) for s in ("he", "ll") for d in (10, 100)]
    assert judge(trains, classes=10)["verdict"] == "not supported"
    fails = [row("relu", s, d, 0.1) for s in ("he", "ll") for d in (10, 100)]
    out = judge(fails, classes=10)
    assert out["verdict"] == "not supported" and out["frontier"]["relu"] == {"he": 10, "ll": 10}


def test_power_law_fit_recovers_made_up_exponent():
    a, b = fit_power_law([10, 100, 1000], [2e-3 * d**-0.75 for d in (10, 100, 1000)])
    assert a == pytest.approx(2e-3) and b == pytest.approx(-0.75)
    assert fit_power_law([10], [1e-3]) is None


def test_depth_scale_is_finite_off_criticality_and_infinite_for_he_relu():
    # torch's default on tanh (sigma_w^2 = 1/3) is deep in the ordered phase: a short depth scale.
    assert six_xi_c("torch_default", "tanh", 100) < 20
    assert math.isinf(six_xi_c("he_normal", "relu", 100))
    # auto's depth-critical gain gives a longer depth scale than Xavier's 5/3 for tanh.
    assert six_xi_c("auto", "tanh", 100) > six_xi_c("xavier_uniform", "tanh", 100)


@pytest.mark.slow
def test_quick_study_runs_end_to_end(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "initlab",
            "study",
            "depth-frontier",
            "--quick",
            "--json",
            "--out",
            str(tmp_path),
            "--store",
            str(tmp_path / "s.sqlite"),
            "--set",
            "depths=[5,20]",
            "--set",
            "epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout)
    assert data["study"] == "depth-frontier" and data["verdict"] in ("supported", "not supported")
    rows = data["evidence"]["rows"]
    assert {r["depth"] for r in rows} == {5, 20}
    assert all(r["lr"] in (1e-4, 1e-3, 1e-2) for r in rows)
    # looks_linear's map is linear at init: every singular value of its Jacobian equal, spread 0.
    assert all(abs(r["jacobian_spread"]) < 1e-3 for r in rows if r["scheme"] == "looks_linear")
    assert (tmp_path / "depth-frontier" / "depth_frontier.json").exists()
