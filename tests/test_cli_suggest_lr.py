"""``initlab suggest-lr``: the real command through a subprocess; the dataset's test split unused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

FACTORY = textwrap.dedent(
    """
    from torch import nn
    import initlab


    def make():
        net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))
        initlab.initialize(net, "auto", seed=0)
        return net
    """
)


def run(tmp_path, *args):
    (tmp_path / "lr_factory.py").write_text(FACTORY)
    return subprocess.run(
        [sys.executable, "-m", "initlab", "suggest-lr", str(tmp_path / "lr_factory.py") + ":make", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_suggest_lr_prints_the_table_and_json(tmp_path):
    res = run(tmp_path, "--dataset", "digits", "--flatten", "--grid", "1e-3,1e-2", "--steps", "3", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["lr"] in (1e-3, 1e-2) and data["grid"] == [1e-3, 1e-2]
    assert data["n_train"] + data["n_val"] == 1437  # digits' training split only


def test_bad_optimizer_is_one_line_and_exit_2(tmp_path):
    res = run(tmp_path, "--dataset", "digits", "--flatten", "--optimizer", "rmsprop")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "optimizer 'rmsprop' is not supported; allowed: adam, sgd" in res.stderr


def test_poisoned_test_labels_do_not_change_the_choice():
    from torch import nn

    import initlab
    from initlab.cli.suggest_lr_cmd import suggest_for_dataset
    from initlab.data import load

    def net():
        model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
        initlab.initialize(model, seed=0)
        return model

    data = load("digits", flatten=True, limit_train=300)
    first = suggest_for_dataset(net(), data, grid=[1e-3, 1e-2, 1e-1], steps=10)
    data.y_test[:] = torch.randint(0, 10, data.y_test.shape, generator=torch.Generator().manual_seed(0))
    again = suggest_for_dataset(net(), data, grid=[1e-3, 1e-2, 1e-1], steps=10)
    assert (again.lr, again.val_loss, again.val_acc) == (first.lr, first.val_loss, first.val_acc)
