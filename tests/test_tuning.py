"""Tuned comparisons: the validation split, lr selection on validation only, budgets."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import initlab.data
from initlab.data import load
from initlab.data.split import with_validation
from initlab.sweep import compare
from initlab.sweep.config import CompareConfig


def test_validation_split_is_stratified_disjoint_and_fixed():
    digits = load("digits")
    split = with_validation(digits, 0.1)
    n = digits.n_train
    val, train = set(split.val_indices.tolist()), set(split.train_indices.tolist())
    assert not val & train and val | train == set(range(n))  # disjoint, together the training set
    assert split.n_val == round(0.1 * n) and split.meta["validation"]["n_val"] == split.n_val
    assert torch.equal(split.x_val, digits.x_train[split.val_indices])  # carved from train, not test
    # Disjoint from test: no validation row is a test row (test stays untouched and whole).
    assert torch.equal(split.x_test, digits.x_test)
    assert (
        not (split.x_val.reshape(len(split.x_val), 1, -1) == digits.x_test.reshape(1, len(digits.x_test), -1))
        .all(dim=2)
        .any()
    )
    # Stratified: every class within one sample of its share.
    for c in range(10):
        share = float((digits.y_train == c).sum()) * split.n_val / n
        assert abs(int((split.y_val == c).sum()) - share) < 1
    # Fixed: the split depends on the dataset only (no seed, no scheme), and a reload gives it again.
    again = with_validation(load("digits"), 0.1)
    assert torch.equal(again.val_indices, split.val_indices)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.0001])
def test_bad_validation_fraction_is_named(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        with_validation(load("digits"), fraction)


def test_every_member_is_validated_on_the_same_split(tmp_path, capsys):
    config = CompareConfig(
        schemes=("he_normal", "xavier_uniform"), seeds=(0, 1), epochs=1, width=16, batch_size=64, lr_grid=(0.01, 0.1)
    )
    data = compare(config, store=tmp_path / "s.sqlite", progress=False)
    # Validation accuracy is a multiple of 1/n_val for every member: one split size for all.
    n_val = round(0.1 * load("digits").n_train)
    for run in data.all_runs:
        assert abs(run.val_acc[0] * n_val - round(run.val_acc[0] * n_val)) < 1e-9
    # `initlab runs` counts a cell per (scheme, seed, lr): 2 x 2 x 2 done of 8
    from initlab.cli import main

    main(["runs", "--store", str(tmp_path / "s.sqlite"), "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["cells"], row["cells_total"]) == (8, 8)


def test_lr_selection_never_reads_test_labels(tmp_path, monkeypatch):
    config = CompareConfig(
        schemes=("he_normal", "xavier_uniform"),
        seeds=(0, 1),
        epochs=2,
        width=16,
        batch_size=64,
        lr_grid=(0.003, 0.03, 0.3),
        budgets=(1,),
    )
    honest = compare(config, store=tmp_path / "honest.sqlite", progress=False)

    real_load = initlab.data.load

    def poisoned(*args, **kwargs):
        ds = real_load(*args, **kwargs)
        g = torch.Generator().manual_seed(0)
        return dataclasses.replace(ds, y_test=torch.randint(0, ds.num_classes, ds.y_test.shape, generator=g))

    monkeypatch.setattr(initlab.data, "load", poisoned)
    liar = compare(config, store=tmp_path / "poisoned.sqlite", progress=False)
    for budget in honest.tuning.budgets:
        assert liar.tuning.selected[budget] == honest.tuning.selected[budget]
        for scheme, row in honest.tuning.rows[budget].items():
            assert liar.tuning.rows[budget][scheme].val_means == row.val_means
    # The poison did reach the test numbers: chance-level accuracy instead of a trained one.
    assert max(r["mean"] for r in liar.summary) < 0.2 < min(r["mean"] for r in honest.summary)


def _run(lr, seed, val, status="ok", test=0.9):
    from initlab.report.analysis import Run

    return Run(
        label=f"s@lr={lr}",
        scheme="s",
        lr=lr,
        seed=seed,
        status=status,
        test_acc=test,
        test_loss=0.1,
        train_acc=0.9,
        train_loss=0.1,
        diverged_step=5 if status == "diverged" else None,
        wall_time=1.0,
        steps_to_target=None,
        val_acc=(val,),
        test_curve={1: test},
    )


def test_select_lr_reads_validation_only_and_a_divergence_counts_as_zero():
    from initlab.report.analysis import select_lr

    runs = [
        _run(0.1, 0, 0.99, test=0.1),
        _run(0.1, 1, 0.99, status="diverged", test=0.1),
        _run(0.01, 0, 0.90, test=0.99),
        _run(0.01, 1, 0.92, test=0.99),
    ]
    lr, means = select_lr(runs, epoch=1)
    # 0.1 has the best validation run but diverged on seed 1: mean (0.99 + 0) / 2 < 0.91
    assert lr == 0.01 and means == {"0.01": pytest.approx(0.91), "0.1": pytest.approx(0.495)}
    # ties go to the smaller rate; test accuracies never enter
    tie = [_run(0.1, 0, 0.9, test=0.1), _run(0.03, 0, 0.9, test=0.99)]
    assert select_lr(tie, epoch=1)[0] == 0.03
