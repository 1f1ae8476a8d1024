"""Regression and language modelling in the engine and the statistics, on data whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab import stats
from initlab.data import Dataset
from initlab.engine import Member, TrainConfig, train
from initlab.models import build
from initlab.report import ReportData
from initlab.tasks import metric_for, r_squared


def linear_regression_data(n_train: int = 256, n_test: int = 128, features: int = 8) -> Dataset:
    """y = x·w + small noise, with x ~ N(0, I): a linear model reaches R² ≈ 1."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(features, 1, generator=g)
    x = torch.randn(n_train + n_test, features, generator=g)
    y = x @ w + 0.05 * torch.randn(n_train + n_test, 1, generator=g)
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    return Dataset("linear", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 1, task="regression")


def mlp_factory(features: int, outputs: int):
    return lambda: nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, outputs))


@pytest.mark.parametrize("backend", ["mlp", "vmap", "loop"])
def test_mse_backends_agree_and_a_good_init_beats_zeros(backend):
    data = linear_regression_data()
    config = TrainConfig(epochs=6, batch_size=32, lr=0.05, momentum=0.9, loss="mse")
    members = [Member("xavier_uniform", 0), Member("zeros", 0)]
    result = train(mlp_factory(8, 1), members, data, config, backend=backend)
    good, zero = result.members
    assert math.isnan(good.records[-1].train_acc) and math.isnan(good.test_acc)  # no accuracy for MSE
    var = float(data.y_test.var(correction=0))
    assert r_squared(good.test_loss, var) > 0.9  # a linear teacher: a tanh MLP fits it
    assert r_squared(zero.test_loss, var) < 0.05  # zero weights never break symmetry: the mean only
    reference = train(mlp_factory(8, 1), members, data, config, backend="loop")
    assert good.test_loss == pytest.approx(reference.members[0].test_loss, rel=1e-4)


def repeating_text_data(context: int = 8, period: int = 5, n_train: int = 96, n_test: int = 24) -> Dataset:
    """Tokens 0,1,2,3,4,0,1,... : after one token of context the next one is certain."""
    tokens = torch.arange((n_train + n_test) * context + 1) % period
    x = tokens[:-1].reshape(-1, context)
    y = tokens[1:].reshape(-1, context)
    return Dataset("cycle", x[:n_train].float(), y[:n_train], x[n_train:].float(), y[n_train:], period, task="lm")


def test_transformer_learns_a_cycle_and_zero_init_stays_at_chance():
    data = repeating_text_data()

    def factory():
        return build("transformer", input_shape=(8,), num_classes=5, width=16, depth=1, heads=2)

    config = TrainConfig(epochs=8, batch_size=16, optimizer="adam", lr=0.01)
    result = train(factory, [Member("xavier_uniform", 0), Member("zeros", 0)], data, config)
    assert result.backend == "vmap"  # the transformer stacks; no loop fallback needed
    good, zero = result.members
    chance = math.log(5)  # nats/token of a uniform guess over 5 tokens
    assert good.test_loss < 0.1 * chance and good.test_acc > 0.95
    assert zero.test_loss == pytest.approx(chance, rel=0.02)  # zero embeddings: every position looks alike


def test_a_model_vmap_cannot_stack_runs_on_the_loop_and_says_why():
    data = linear_regression_data(64, 32)

    class Branchy(nn.Module):  # data-dependent Python control flow: vmap refuses it
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            return self.fc(x) if float(x.sum()) > -1e9 else -self.fc(x)

    result = train(Branchy, [Member("xavier_uniform", 0)], data, TrainConfig(epochs=1, loss="mse"))
    assert result.backend == "loop"
    assert "not a plain MLP" in result.backend_reason and "vmap cannot stack it" in result.backend_reason


def test_stats_rank_and_target_follow_the_metric_direction():
    assert stats.ranks({"a": 0.5, "b": 0.2, "c": 0.9}, higher_is_better=False) == {"a": 2.0, "b": 1.0, "c": 3.0}
    assert stats.ranks({"a": 0.5, "b": 0.2, "c": 0.9}) == {"a": 2.0, "b": 3.0, "c": 1.0}
    assert stats.steps_to_target([10, 20, 30], [3.0, 1.5, 0.9], 1.0, higher_is_better=False) == 30
    assert stats.steps_to_target([10, 20, 30], [3.0, 1.5, 0.9], None) is None
    mse = {"good": {0: 0.10, 1: 0.12, 2: 0.11}, "bad": {0: 0.90, 1: 0.95, 2: 0.85}}
    rows = {
        r.scheme: r for r in stats.compare_schemes(mse, reference="good", higher_is_better=False, bounds=(0, math.inf))
    }
    assert rows["good"].rank == 1.0 and rows["bad"].rank == 2.0
    assert rows["bad"].diff_vs_reference == pytest.approx((0.80 + 0.83 + 0.74) / 3)  # bad − reference
    assert rows["bad"].ci_high > 0.9  # not clipped to 1 as an accuracy would be


def test_report_ranks_lower_is_better_and_writes_the_metric(tmp_path):
    config = {
        "task": "lm",
        "schemes": ["he_normal", "zeros"],
        "reference": "he_normal",
        "target": 2.0,
        "data_options": {"level": "char"},
    }
    runs, epochs = [], []
    for scheme, base in (("he_normal", 1.0), ("zeros", 3.0)):
        for seed in range(3):
            loss = base + 0.01 * seed
            runs.append(
                dict(
                    scheme=scheme,
                    seed=seed,
                    status="ok",
                    test_acc=0.5,
                    test_loss=loss,
                    train_acc=0.5,
                    train_loss=loss,
                    diverged_step=None,
                    wall_time=1.0,
                    extra={},
                )
            )
            epochs.append(
                dict(
                    scheme=scheme,
                    seed=seed,
                    epoch=1,
                    step=10,
                    train_loss=loss,
                    train_acc=0.5,
                    test_loss=loss,
                    test_acc=0.5,
                    wall_time=1.0,
                )
            )
    data = ReportData.from_records("x", config, runs, epochs)
    out = data.to_json()
    assert out["metric"] == {"name": "loss", "higher_is_better": False, "unit": "nats/token"}
    by = {r["scheme"]: r for r in out["summary"]}
    assert by["he_normal"]["rank"] == 1.0 and by["he_normal"]["mean"] == pytest.approx(1.01)
    assert by["he_normal"]["bits"] == pytest.approx(1.01 / math.log(2))
    assert by["he_normal"]["reached_target"] == 3 and by["zeros"]["reached_target"] == 0  # loss <= 2.0
    from initlab.report import write_report

    md = write_report(data, tmp_path)["md"].read_text()
    assert "lower is better" in md and "Bits per character (mean loss / ln 2): he_normal 1.457" in md
    assert metric_for(None).name == "accuracy"


def test_configs_from_before_tasks_keep_their_hash():
    from initlab.sweep.config import CompareConfig

    plain = CompareConfig(schemes=("he_normal",), seeds=(0,)).to_dict()
    assert "task" not in plain and "data_source" not in plain and plain["target"] == 0.9
    lm = CompareConfig(schemes=("he_normal",), seeds=(0,), task="lm").to_dict()
    assert lm["task"] == "lm" and lm["target"] is None
    with pytest.raises(ValueError, match="task: got .ranking.; expected one of classification, regression, lm"):
        CompareConfig(task="ranking")
