"""The grouped-convolution backend equals the loop backend (the reference) on small CNNs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.engine import TrainConfig, train
from initlab.models import cnn, rescnn
from test_engine import (
    ADAM,
    MEMBERS,
    SGD,
    assert_params_close,
    conv_bn_factory,
    metrics,
    tiny_data,
)

MODELS = {
    "conv1d_batchnorm": (conv_bn_factory, (1, 12)),
    "cnn2d": (lambda: cnn((2, 6, 6), 3, width=4, depth=2), (2, 6, 6)),
    "rescnn2d": (lambda: rescnn((1, 6, 6), 3, width=4, depth=2), (1, 6, 6)),
    "rescnn2d_batchnorm": (lambda: rescnn((1, 6, 6), 3, width=4, depth=2, norm="batch"), (1, 6, 6)),
    "rescnn1d_layernorm": (lambda: rescnn((12,), 3, width=4, depth=1, norm="layer"), (12,)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_grouped_equals_the_loop_backend(name):
    factory, shape = MODELS[name]
    data = tiny_data(shape=shape)
    # Adam turns the float noise in a gradient that is exactly 0 in exact arithmetic (a conv bias
    # before BatchNorm) into lr-sized steps in any backend: BatchNorm models are compared under SGD.
    for config in (SGD,) if "batchnorm" in name else (SGD, ADAM):
        grouped = train(factory, MEMBERS, data, config)
        loop = train(factory, MEMBERS, data, config, backend="loop")
        assert grouped.backend == "grouped"
        # float32, 14 steps: differences come only from summation order.
        assert_params_close(grouped.state["params"], loop.state["params"], atol=1e-5)
        assert_params_close(grouped.state["buffers"], loop.state["buffers"], atol=1e-5)
        for ours, theirs in zip(metrics(grouped), metrics(loop)):
            assert ours == pytest.approx(theirs, abs=1e-5)


def test_grouped_leaves_the_data_alone_with_in_place_activations():
    def factory():
        return nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv1d(1, 3, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(36, 3)
        )

    data = tiny_data(shape=(1, 12))
    before = data.x_train.clone(), data.x_test.clone()
    grouped = train(factory, MEMBERS, data, SGD, backend="grouped")
    assert torch.equal(data.x_train, before[0]) and torch.equal(data.x_test, before[1])
    loop = train(factory, MEMBERS, tiny_data(shape=(1, 12)), SGD, backend="loop")
    assert_params_close(grouped.state["params"], loop.state["params"], atol=1e-5)


def test_auto_keeps_mlps_on_the_mlp_path_and_grouped_refuses_what_it_cannot_run():
    data = tiny_data(shape=(1, 12))
    assert train(conv_bn_factory, MEMBERS[:1], data, TrainConfig(epochs=1)).backend == "grouped"

    def dropout():
        return nn.Sequential(nn.Conv1d(1, 2, 3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(20, 3))

    assert train(dropout, MEMBERS[:1], data, TrainConfig(epochs=1)).backend == "loop"
    with pytest.raises(ValueError, match="backend 'grouped' cannot run this model .*Dropout"):
        train(dropout, MEMBERS[:1], data, TrainConfig(epochs=1), backend="grouped")


def test_a_member_alone_equals_the_same_member_in_a_grouped_ensemble():
    factory, shape = MODELS["cnn2d"]
    data = tiny_data(shape=shape)
    ensemble = train(factory, MEMBERS, data, SGD)
    alone = train(factory, [MEMBERS[1]], data, SGD)
    assert_params_close({n: t[1:2] for n, t in ensemble.state["params"].items()}, alone.state["params"], atol=1e-6)
