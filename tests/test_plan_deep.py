"""Deep plans: the tabulated depth-critical gain against the layer-by-layer quadrature, and the
untraced nn.Sequential reading against torch.fx."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.activations import get_activation
from initlab.policy import plan
from initlab.policy.critical import depth_critical_gain, log_gradient_gains
from initlab.quadrature import hermite_normal


def reference_log_gain(activation: str, depth: int, sigma: float, bias_variance: float = 0.0) -> float:
    """sum_l log chi_l by Gauss-Hermite quadrature at every layer (the definition, no tables)."""
    phi = get_activation(activation)
    nodes, weights = hermite_normal()
    q, total = sigma * sigma + bias_variance, 0.0
    for _ in range(depth - 1):
        z = (nodes * math.sqrt(q)).clone().requires_grad_(True)
        with torch.enable_grad():
            y = phi(z)
            (dy,) = torch.autograd.grad(y.sum(), z)
        total += math.log(sigma * sigma * float((weights * dy**2).sum()))
        q = sigma * sigma * float((weights * y.detach() ** 2).sum()) + bias_variance
    return total


def reference_critical_gain(activation: str, depth: int) -> float:
    lo, hi = 0.25, 8.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reference_log_gain(activation, depth, mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("activation, depth", [("tanh", 12), ("tanh", 60), ("gelu", 12), ("elu", 30), ("softsign", 20)])
def test_tabulated_critical_gain_matches_the_layer_by_layer_quadrature(activation, depth):
    # Tables: linear interpolation of log-moments in log q with step 0.002, ~5e-7 relative per layer.
    assert depth_critical_gain(activation, None, depth) == pytest.approx(
        reference_critical_gain(activation, depth), rel=1e-6
    )


def test_log_gain_with_bias_variance_matches_the_quadrature():
    sigmas = [0.9, 1.2, 1.6]
    gains = log_gradient_gains("tanh", None, 25, torch.tensor(sigmas, dtype=torch.float64).numpy(), bias_variance=0.05)
    for sigma, gain in zip(sigmas, gains):
        assert gain == pytest.approx(reference_log_gain("tanh", 25, sigma, bias_variance=0.05), abs=1e-4)


def test_no_critical_gain_where_none_exists():
    assert depth_critical_gain("tanh", None, 1) is None  # one layer: no layer-to-layer gradient gain
    # Sigmoid at zero bias: the log gain has the same sign at both ends of [0.25, 8], so no root.
    ends = [reference_log_gain("sigmoid", 10, s) for s in (0.25, 8.0)]
    assert (ends[0] < 0) == (ends[1] < 0)
    assert depth_critical_gain("sigmoid", None, 10) is None


def test_critical_gain_approaches_one_for_deep_tanh():
    # Edge of chaos at zero bias is sigma = 1 (q -> 0); the finite-depth gain tends to it from above.
    gains = [depth_critical_gain("tanh", None, d) for d in (100, 1000, 10000)]
    assert gains[0] > gains[1] > gains[2] > 1.0 and gains[2] < 1.02


class TracedSequential(nn.Sequential):
    """The same chain with forward overridden, so introspection has to trace it with torch.fx."""

    def forward(self, x):
        return super().forward(x)


def zoo() -> list[list[nn.Module]]:
    return [
        [nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)],
        [
            nn.Linear(8, 16),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(16, 16),
            nn.LeakyReLU(0.2),
            nn.Linear(16, 3),
            nn.Softmax(-1),
        ],
        [
            nn.Conv2d(3, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3),
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(4, 2),
        ],
        [nn.Linear(8, 8), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 2), nn.Sigmoid()],
        [layer for _ in range(10) for layer in (nn.Linear(8, 8), nn.Tanh())] + [nn.Linear(8, 2)],
    ]


@pytest.mark.parametrize("index", range(5))
def test_untraced_sequential_plan_equals_the_traced_plan(index):
    fast = nn.Sequential(*zoo()[index])
    traced = TracedSequential(*zoo()[index])
    a, b = plan(fast), plan(traced)
    assert a.method == b.method == "fx"
    assert [(e.param, e.scheme, e.params, e.reason, e.role, e.activation) for e in a] == [
        (e.param, e.scheme, e.params, e.reason, e.role, e.activation) for e in b
    ]


def test_a_module_used_twice_is_still_traced():
    shared = nn.Linear(8, 8)
    net = nn.Sequential(shared, nn.Tanh(), shared, nn.Linear(8, 2))
    assert (
        plan(net)["0.weight"].scheme
        == plan(TracedSequential(shared, nn.Tanh(), shared, nn.Linear(8, 2)))["0.weight"].scheme
    )


def relu_chain(depth: int, width: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(12, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, 5))


def test_auto_uses_looks_linear_beyond_hes_predicted_trainable_depth():
    from initlab.policy import initialize

    net = relu_chain(40, 32)  # 5 * 40 / 32 = 6.25 > 1
    p = initialize(net, "auto", seed=0)
    weights = [e for e in p if e.param.endswith("weight")]
    assert [e.params["position"] for e in weights] == ["first"] + ["hidden"] * 39 + ["last"]
    assert all(e.scheme == "looks_linear" for e in weights) and "Hanin & Rolnick" in weights[1].reason
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the whole chain is linear at init: f(-x) = -f(x)
        torch.testing.assert_close(net(-x), -net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "net",
    [
        relu_chain(12, 128),  # 5 * 12 / 128 < 1: He is predicted to train
        relu_chain(40, 33),  # odd width: no mirrored pairs
        relu_chain(40, 32, nn.LeakyReLU),  # not ReLU
        nn.Sequential(*relu_chain(40, 32)[:-3], nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5)),  # mixed
    ],
)
def test_auto_keeps_he_where_looks_linear_does_not_apply(net):
    assert plan(net)["2.weight"].scheme == "he_normal"
