"""Study lr-transfer: the pure parts on made-up losses, and one tiny real run through the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from initlab.studies.lr_transfer import bootstrap_optimum, drift, judge, optimal_lr

LRS = [1e-3, 2e-3, 4e-3, 8e-3]


def test_optimal_lr_is_the_lowest_mean_loss_and_a_divergence_disqualifies():
    losses = {1e-3: [1.0, 1.0], 2e-3: [0.5, 0.7], 4e-3: [0.1, math.inf], 8e-3: [2.0, 2.0]}
    assert optimal_lr(LRS, losses) == 2e-3
    tie = {lr: [1.0, 1.0] for lr in LRS}
    assert optimal_lr(LRS, tie) == 1e-3  # ties go to the smaller rate


def test_bootstrap_interval_covers_the_optimum_and_is_degenerate_when_every_seed_agrees():
    agree = {1e-3: [1.0, 1.1, 0.9], 2e-3: [0.5, 0.6, 0.4], 4e-3: [0.8, 0.9, 0.7], 8e-3: [2.0, 2.0, 2.0]}
    assert bootstrap_optimum(LRS, agree, 200, torch.Generator().manual_seed(0)) == (2e-3, 2e-3)
    # seed 0 prefers 1e-3, seeds 1-2 prefer 4e-3: resamples disagree, so the interval spans both
    split = {1e-3: [0.1, 1.0, 1.0], 2e-3: [0.6, 0.6, 0.6], 4e-3: [1.0, 0.2, 0.2], 8e-3: [2.0, 2.0, 2.0]}
    assert bootstrap_optimum(LRS, split, 400, torch.Generator().manual_seed(0)) == (1e-3, 4e-3)


def test_drift_and_verdict():
    assert drift({64: 8e-3, 256: 2e-3, 1024: 5e-4}) == pytest.approx(4.0)
    assert drift({64: 1e-3, 1024: 1e-3}) == 0.0
    assert judge(4.0, 0.0) == "supported"
    assert judge(4.0, -1.0) == "supported"
    assert judge(0.5, 0.0) == "partly"
    assert judge(4.0, 2.0) == "not supported"


def test_run_grid_trains_every_width_and_lr_in_process():
    from initlab.studies.lr_transfer import DEFAULTS, run_grid

    settings = {
        **DEFAULTS,
        "widths": [8, 16],
        "lrs": [1e-3, 1e-1],
        "seeds": 2,
        "epochs": 1,
        "limit_train": 64,
        "bootstrap": 20,
    }
    grid = run_grid(settings)
    for par in ("sp", "mup"):
        rows = grid[par]["rows"]
        assert sorted(rows) == [8, 16]
        for row in rows.values():
            assert sorted(row["losses"]) == [1e-3, 1e-1] and all(len(v) == 2 for v in row["losses"].values())
            assert all(math.isfinite(v) and 0 < v < 10 for vals in row["losses"].values() for v in vals)
    # at the base (smallest) width μP is SP exactly: same init, same multipliers, same losses
    assert grid["mup"]["rows"][8]["losses"] == grid["sp"]["rows"][8]["losses"]


@pytest.mark.slow
def test_study_runs_tiny_through_the_cli(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    settings = ["widths=[8,16,32]", "lrs=[0.001,0.01,0.1]", "seeds=2", "epochs=1", "limit_train=128", "bootstrap=50"]
    cmd = [
        sys.executable,
        "-m",
        "initlab",
        "study",
        "lr-transfer",
        "--json",
        "--out",
        str(tmp_path),
        "--store",
        str(tmp_path / "s.db"),
    ] + [a for s in settings for a in ("--set", s)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["study"] == "lr-transfer" and out["verdict"] in ("supported", "partly", "not supported")
    for par in ("sp", "mup"):
        opt = out["evidence"][par]["optimal_lr"]
        assert set(opt) == {"8", "16", "32"} and all(v in (0.001, 0.01, 0.1) for v in opt.values())
        assert out["evidence"][par]["drift_log2"] == pytest.approx(math.log2(opt["8"] / opt["32"]))
    assert (tmp_path / "lr-transfer" / "lr_transfer.png").exists()
