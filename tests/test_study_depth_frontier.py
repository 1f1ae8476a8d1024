"""Study depth-frontier: the judge on made-up measurements, the theory helpers, and a tiny real run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from initlab.errors import UserError
from initlab.studies.depth_frontier import depth_settings, fit_power_law, judge, planned_cells, six_xi_c
from initlab.studies.frontier_store import experiment_config, run_depth


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
    rows = [r for r in data["evidence"]["rows"] if r["family"] == "mlp"]
    assert {r["depth"] for r in rows} == {5, 20}
    cnn = {(r["scheme"], r["depth"]) for r in data["evidence"]["rows"] if r["family"] == "cnn"}
    assert cnn == {(s, d) for s in ("torch_default", "delta_orthogonal") for d in (10, 30)}
    assert all(r["lr"] in (1e-4, 1e-3, 1e-2) for r in rows)
    # looks_linear's map is linear at init: every singular value of its Jacobian equal, spread 0.
    assert all(abs(r["jacobian_spread"]) < 1e-3 for r in rows if r["scheme"] == "looks_linear")
    assert (tmp_path / "depth-frontier" / "depth_frontier.json").exists()
    # Every row was read back from the store: one experiment per (network, depth), a run per cell.
    from initlab.store import open_store

    with open_store(tmp_path / "s.sqlite") as db:
        stored = {e.id: (e.config["family"], e.config["activation"], e.config["depth"]) for e in db.list_experiments()}
        runs = sum(len(db.runs(e)) for e in stored)
    assert len(set(stored.values())) == len(stored) == 6  # mlp tanh/relu x 2 depths, cnn x 2 depths
    assert runs == len(data["evidence"]["rows"]) and set(data["experiments"]) == set(stored)
    # `initlab runs` names a study's network family and counts its runs (no scheme x seed total)
    listed = subprocess.run(
        [sys.executable, "-m", "initlab", "runs", "--store", str(tmp_path / "s.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "mlp 5x" in listed.stdout and "cnn 10x" in listed.stdout
    assert "None" not in listed.stdout and "/0" not in listed.stdout


def made_up_cell(scheme, seed, depth=10, acc=0.5):
    return {
        "family": "mlp",
        "activation": "tanh",
        "scheme": scheme,
        "depth": depth,
        "seed": seed,
        "lr": 1e-3 * (seed + 1),
        "lr_ok": True,
        "lr_grid": [1e-3, 1e-2],
        "lr_val_loss": [0.5, math.nan],
        "lr_val_acc": [0.8, 0.1],
        "lr_seconds": 0.1,
        "test_acc": acc,
        "test_loss": 1.0,
        "train_loss": 0.9,
        "train_acc": 0.6,
        "status": "ok",
        "diverged_step": None,
        "jacobian_spread": math.inf,
        "six_xi_c": 12.0,
        "seconds": 3.0,
        "epochs": [
            {
                "epoch": 1,
                "step": 5,
                "train_loss": 0.9,
                "train_acc": 0.6,
                "test_loss": 1.0,
                "test_acc": acc,
                "wall_time": 1.0,
            }
        ],
    }


SETTINGS = {
    "dataset": "digits",
    "limit_train": None,
    "width": 16,
    "epochs": 1,
    "batch_size": 64,
    "lr_grid": [1e-3, 1e-2],
    "lr_steps": 5,
}


def test_stored_cells_are_read_back_and_not_recomputed(tmp_path):
    store = tmp_path / "s.sqlite"
    computed = []

    def compute(scheme, seed):
        computed.append((scheme, seed))
        return made_up_cell(scheme, seed)

    cells = [("auto", 0), ("auto", 1), ("xavier_uniform", 0)]
    first_id, first = run_depth(store, "mlp", "tanh", 10, cells[:2], SETTINGS, compute)
    assert computed == cells[:2]
    # A rerun with one more cell computes only the new one; the rest come back from the store.
    seen = []
    second_id, rows = run_depth(
        store, "mlp", "tanh", 10, cells, SETTINGS, compute, lambda r, reused: seen.append(reused)
    )
    assert second_id == first_id and computed == cells and seen == [True, True, False]
    assert rows[:2] == first
    assert rows[1]["lr"] == 2e-3 and math.isinf(rows[1]["jacobian_spread"]) and math.isnan(rows[1]["lr_val_loss"][1])
    # compute=None reads what is stored and computes nothing.
    _, stored_only = run_depth(store, "mlp", "tanh", 10, [*cells, ("auto", 5)], SETTINGS, None)
    assert stored_only == rows and len(computed) == 3
    assert run_depth(store, "mlp", "tanh", 30, cells, SETTINGS, None) == (None, [])
    # Other settings are another experiment: nothing is reused across them.
    other_id, _ = run_depth(store, "mlp", "tanh", 10, cells[:1], {**SETTINGS, "epochs": 2}, compute)
    assert other_id != first_id and computed[-1] == ("auto", 0)


def test_experiment_config_names_the_settings_that_decide_the_results():
    config = experiment_config("cnn", "tanh", 30, SETTINGS)
    assert config["study"] == "depth-frontier" and config["family"] == "cnn" and config["depth"] == 30
    assert {k: config[k] for k in SETTINGS} == SETTINGS


def test_deep_tiers_apply_from_their_depth_and_later_tiers_win():
    s = {
        "schemes": {"tanh": ["a", "b", "c"]},
        "seeds": 2,
        "lr_grid": None,
        "epochs": 3,
        "deep": [
            {"from": 1000, "seeds": 1, "epochs": 2},
            {"from": 100, "lr_grid": [1e-5]},
            {"from": 3000, "epochs": 1},
        ],
    }
    assert depth_settings(s, 30)["lr_grid"] is None and depth_settings(s, 30)["seeds"] == 2
    at_1000 = depth_settings(s, 1000)
    assert (at_1000["lr_grid"], at_1000["seeds"], at_1000["epochs"]) == ([1e-5], 1, 2)
    assert depth_settings(s, 10000)["epochs"] == 1
    with pytest.raises(UserError, match="unknown key 'width'"):
        depth_settings({**s, "deep": [{"from": 10, "width": 3}]}, 30)
    with pytest.raises(UserError, match="deep: a list of tiers"):
        depth_settings({**s, "deep": {"from": 10}}, 30)


def test_full_settings_reach_10000_layers_for_auto_and_torch_default():
    from initlab.studies.depth_frontier import DEFAULTS, FULL

    s = {**DEFAULTS, **FULL}
    deepest = {
        (family, activation): cells for family, activation, depth, cells, _ in planned_cells(s) if depth == 10000
    }
    assert {sc for sc, _ in deepest[("mlp", "tanh")]} >= {"auto", "torch_default"}
    assert {sc for sc, _ in deepest[("mlp", "relu")]} >= {"auto"}


def test_accuracy_by_depth_averages_seeds_and_marks_depths_not_run():
    from initlab.studies.depth_frontier import accuracy_by_depth

    rows = [
        {**row("tanh", "auto", 10, 0.9), "lr": 1e-3},
        {**row("tanh", "auto", 10, 0.8, seed=1), "lr": 1e-4},
        {**row("tanh", "auto", 30, 0.5), "family": "cnn", "lr": 1e-5},
    ]
    _, header, body = accuracy_by_depth(rows)
    assert header == ["network", "scheme", "10", "30"]
    assert body == [["tanh", "auto", "0.850 (1e-04/1e-03) x2", "-"], ["cnn tanh", "auto", "-", "0.500 (1e-05)"]]


def test_effect_without_an_interval_says_why_on_the_page_not_nan(tmp_path):
    from initlab.studies.base import StudyResult
    from initlab.studies.depth_frontier import _result
    from initlab.studies.page import save_result, write_page

    settings = {**SETTINGS, "depths": [10, 30], "cnn_depths": [], "seeds": 1, "deep": []}
    one_seed = [made_up_cell("auto", 0, depth=d, acc=0.9) for d in (10, 30)]
    one_seed += [made_up_cell("torch_default", 0, depth=10, acc=0.8), made_up_cell("torch_default", 0, 30, 0.1)]
    one_seed[1]["lr"] = 1e-4  # two rates: the lr-against-depth panel has a range to draw
    out = tmp_path / "depth-frontier"
    out.mkdir()
    result = _result(one_seed, settings, 10, ["e1"], out)
    assert result.effect == pytest.approx(0.8) and math.isnan(result.ci[0])
    assert (
        result.effect_text() == "accuracy gap between schemes at the deepest depth = +80.0 pp (one seed, no interval)"
    )
    save_result(result, tmp_path, command="initlab study depth-frontier", wall_s=1.0)
    page = write_page([], tmp_path, order=["depth-frontier"]).read_text()
    assert "(one seed, no interval)" in page and "nan" not in page.lower()
    record = json.loads((out / "result.json").read_text())
    assert StudyResult.from_record(record, base=tmp_path).ci_note == "one seed, no interval"
    # Two seeds at the deepest depth: the note names the gap, not a single seed.
    two_seeds = one_seed + [made_up_cell(s, 1, depth=30, acc=0.5) for s in ("auto", "torch_default")]
    note = _result(two_seeds, {**settings, "seeds": 2}, 10, ["e1"], out).ci_note
    assert note == "largest minus smallest over schemes and 2 seeds, no interval"
