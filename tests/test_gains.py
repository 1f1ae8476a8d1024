from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import initlab

TORCH_CASES = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("conv3d", None),
    ("conv_transpose1d", None),
    ("conv_transpose2d", None),
    ("conv_transpose3d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0.2),
    ("leaky_relu", 1),
    ("selu", None),
]


@pytest.mark.parametrize("name,param", TORCH_CASES)
def test_torch_names_give_calculate_gains_values(name, param):
    assert initlab.gain(name, param) == torch.nn.init.calculate_gain(name, param)


def _monte_carlo_moment_gain(fn, n=2_000_000):
    z = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return 1 / math.sqrt(float((fn(z) ** 2).mean()))


@pytest.mark.parametrize(
    "name,fn",
    [
        ("gelu", F.gelu),
        ("silu", F.silu),
        ("mish", F.mish),
        ("elu", F.elu),
        ("softplus", F.softplus),
        ("tanh", torch.tanh),
        ("sigmoid", torch.sigmoid),
        ("selu", F.selu),
    ],
)
def test_moment_gain_matches_monte_carlo(name, fn):
    # 2e6 samples: the Monte Carlo relative error of E[phi^2] is ~1e-3; 4e-3 is ~4 sigma.
    numeric = initlab.gain(name, method="moment")
    assert numeric == pytest.approx(_monte_carlo_moment_gain(fn), rel=4e-3)


def test_unknown_to_torch_gets_the_moment_gain_by_default():
    assert initlab.gain("gelu") == initlab.gain("gelu", method="moment")
    assert initlab.gain("gelu") == pytest.approx(1.5335, abs=1e-3)


def test_moment_gain_is_exact_for_piecewise_linear_units():
    assert initlab.gain("relu", method="moment") == pytest.approx(math.sqrt(2), abs=1e-12)
    assert initlab.gain("leaky_relu", 0.2, method="moment") == pytest.approx(math.sqrt(2 / 1.04), abs=1e-12)
    assert initlab.gain("linear", method="moment") == pytest.approx(1.0, abs=1e-12)
    assert initlab.gain("tanh", method="moment") == pytest.approx(1.5927, abs=1e-3)


def test_modules_and_callables():
    assert initlab.gain(torch.nn.GELU()) == pytest.approx(initlab.gain("gelu"), rel=1e-12)
    assert initlab.gain(torch.nn.ReLU) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert initlab.gain(lambda x: 2 * x) == pytest.approx(0.5, rel=1e-12)
    assert initlab.gain("elu", 0.5) != initlab.gain("elu")


def test_bad_input():
    with pytest.raises(ValueError, match=r"unknown activation 'rellu'.*relu"):
        initlab.gain("rellu")
    with pytest.raises(ValueError, match=r"method: got 'exact'; expected one of torch, moment"):
        initlab.gain("relu", method="exact")
    with pytest.raises(ValueError, match="param: got True; expected a finite number"):
        initlab.gain("leaky_relu", True)
    with pytest.raises(ValueError, match="param: got nan; expected a finite number"):
        initlab.gain("leaky_relu", float("nan"))
    with pytest.raises(ValueError, match="param: got 0.5; expected no parameter: relu takes none"):
        initlab.gain("relu", 0.5)
    assert initlab.gain("elu", 0.5, method="moment") != initlab.gain("elu", method="moment")
    with pytest.raises(ValueError, match="no gain exists"):
        initlab.gain(lambda x: 0 * x)
