"""Conformance suite for every registered scheme: driven by the registry, so a new scheme
without a distribution or exact-property check here fails ``test_every_scheme_is_covered``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

import initlab
from initlab.schemes import compute_fans, definitions

KS_P_MIN = 1e-4  # a correct sampler fails this with probability 1e-4 per test
SHAPES = [(64,), (128, 96), (96, 128), (32, 16, 3), (32, 16, 3, 3), (8, 4, 3, 3, 3)]
BIG_2D = (400, 300)  # 120k draws for KS tests
BIG_CONV = (64, 32, 3, 3)


def fitting_shapes(name):
    spec = initlab.get_scheme(name)
    return [s for s in SHAPES if spec.fits(s)]


def draw(name, shape, seed=0, **params):
    return initlab.get_scheme(name, **params).sample(shape, generator=torch.Generator().manual_seed(seed))


# --- expected marginal distributions (scipy frozen distributions) ------------------------------


def _fan(shape, mode):
    fi, fo = compute_fans(shape)
    return {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2}[mode]


def _unif(limit):
    return stats.uniform(loc=-limit, scale=2 * limit)


def _trunc(std_target_var, lo=-2, hi=2):
    sigma = math.sqrt(std_target_var) / 0.87962566103423978
    return stats.truncnorm(lo, hi, loc=0, scale=sigma)


# (scheme, params, shape) -> expected distribution of every entry
DISTRIBUTION_CASES = [
    ("random_uniform", {}, BIG_2D, lambda s: _unif(0.05)),
    ("random_uniform", {"limit": 0.3}, (5000,), lambda s: _unif(0.3)),
    ("random_normal", {}, BIG_2D, lambda s: stats.norm(0, 0.01)),
    ("random_normal", {"mean": 1.0, "std": 0.5}, (5000,), lambda s: stats.norm(1.0, 0.5)),
    ("xavier_uniform", {}, BIG_2D, lambda s: _unif(math.sqrt(6 / (s[0] + s[1])))),
    (
        "xavier_uniform",
        {"gain": 5 / 3},
        BIG_CONV,
        lambda s: _unif(5 / 3 * math.sqrt(6 / (_fan(s, "fan_in") + _fan(s, "fan_out")))),
    ),
    (
        "xavier_normal",
        {"gain": 2.0},
        BIG_CONV,
        lambda s: stats.norm(0, 2.0 * math.sqrt(2 / (_fan(s, "fan_in") + _fan(s, "fan_out")))),
    ),
    ("he_normal", {}, BIG_2D, lambda s: stats.norm(0, math.sqrt(2 / s[1]))),
    ("he_normal", {"mode": "fan_out"}, BIG_CONV, lambda s: stats.norm(0, math.sqrt(2 / _fan(s, "fan_out")))),
    ("he_normal", {"a": 0.2}, BIG_2D, lambda s: stats.norm(0, math.sqrt(2 / (1 + 0.04)) / math.sqrt(s[1]))),
    ("he_normal", {"nonlinearity": "tanh"}, BIG_2D, lambda s: stats.norm(0, 5 / 3 / math.sqrt(s[1]))),
    ("he_normal", {"nonlinearity": "gelu"}, BIG_2D, lambda s: stats.norm(0, initlab.gain("gelu") / math.sqrt(s[1]))),
    ("he_uniform", {}, BIG_CONV, lambda s: _unif(math.sqrt(2) * math.sqrt(3 / _fan(s, "fan_in")))),
    ("he_uniform", {"nonlinearity": "relu", "mode": "fan_out"}, BIG_2D, lambda s: _unif(math.sqrt(6 / s[0]))),
    ("lecun_normal", {}, BIG_2D, lambda s: _trunc(1 / s[1])),
    ("lecun_uniform", {}, BIG_CONV, lambda s: _unif(math.sqrt(3 / _fan(s, "fan_in")))),
    ("uniform_fan", {}, BIG_2D, lambda s: _unif(1 / math.sqrt(s[1]))),
    ("torch_default", {}, BIG_CONV, lambda s: _unif(1 / math.sqrt(_fan(s, "fan_in")))),
    ("torch_default", {"fan_in": 50}, (5000,), lambda s: _unif(1 / math.sqrt(50))),
    ("positive", {}, BIG_2D, lambda s: stats.halfnorm(0, math.sqrt(2 / s[1]))),
    ("uniform", {"a": -1.0, "b": 3.0}, (5000,), lambda s: stats.uniform(-1.0, 4.0)),
    ("normal", {"mean": 0.5, "std": 2.0}, BIG_2D, lambda s: stats.norm(0.5, 2.0)),
    ("trunc_normal", {}, BIG_2D, lambda s: stats.truncnorm(-2, 2)),
    (
        "trunc_normal",
        {"mean": 1.0, "std": 0.5, "a": 0.0, "b": 1.5},
        BIG_2D,
        lambda s: stats.truncnorm((0 - 1) / 0.5, (1.5 - 1) / 0.5, loc=1.0, scale=0.5),
    ),
] + [
    (
        "variance_scaling",
        {"scale": 2.0, "mode": mode, "distribution": dist},
        BIG_CONV,
        (
            lambda mode, dist: (
                lambda s: {
                    "normal": stats.norm(0, math.sqrt(2.0 / _fan(s, mode))),
                    "uniform": _unif(math.sqrt(3 * 2.0 / _fan(s, mode))),
                    "truncated_normal": _trunc(2.0 / _fan(s, mode)),
                }[dist]
            )
        )(mode, dist),
    )
    for mode in ("fan_in", "fan_out", "fan_avg")
    for dist in ("normal", "truncated_normal", "uniform")
]


@pytest.mark.parametrize(
    "name,params,shape,expected", DISTRIBUTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(DISTRIBUTION_CASES)]
)
def test_marginal_distribution_ks(name, params, shape, expected):
    w = draw(name, shape, seed=7, **params).double().flatten().numpy()
    result = stats.kstest(w, expected(shape).cdf)
    assert result.pvalue > KS_P_MIN, f"{name}{params} on {shape}: KS p={result.pvalue:.2e}"


def test_truncated_variance_scaling_keeps_the_requested_variance():
    w = draw("variance_scaling", BIG_2D, scale=3.0, mode="fan_in", distribution="truncated_normal")
    assert float(w.var()) == pytest.approx(3.0 / BIG_2D[1], rel=0.02)
    assert float(w.abs().max()) <= 2 * math.sqrt(3.0 / BIG_2D[1]) / 0.87962566103423978 + 1e-7


# --- against torch.nn.init where torch has the same scheme ----------------------------------

TORCH_TWINS = [
    ("xavier_uniform", {"gain": 1.5}, lambda t, g: torch.nn.init.xavier_uniform_(t, gain=1.5, generator=g)),
    ("xavier_normal", {}, lambda t, g: torch.nn.init.xavier_normal_(t, generator=g)),
    (
        "he_normal",
        {"mode": "fan_out", "nonlinearity": "relu"},
        lambda t, g: torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=g),
    ),
    ("he_uniform", {"a": 0.1}, lambda t, g: torch.nn.init.kaiming_uniform_(t, a=0.1, generator=g)),
    ("trunc_normal", {"std": 0.02}, lambda t, g: torch.nn.init.trunc_normal_(t, std=0.02, generator=g)),
    ("uniform", {"a": -0.5, "b": 0.5}, lambda t, g: torch.nn.init.uniform_(t, -0.5, 0.5, generator=g)),
    ("normal", {"std": 0.3}, lambda t, g: torch.nn.init.normal_(t, std=0.3, generator=g)),
    ("orthogonal", {"gain": 2.0}, lambda t, g: torch.nn.init.orthogonal_(t, gain=2.0, generator=g)),
    ("uniform_fan", {}, lambda t, g: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)),
]


@pytest.mark.parametrize("name,params,torch_fill", TORCH_TWINS, ids=[t[0] for t in TORCH_TWINS])
def test_same_distribution_as_torch(name, params, torch_fill):
    ours = draw(name, BIG_CONV, seed=1, **params).flatten().double().numpy()
    theirs = torch_fill(torch.empty(BIG_CONV), torch.Generator().manual_seed(2)).flatten().double().numpy()
    assert stats.ks_2samp(ours, theirs).pvalue > KS_P_MIN


@pytest.mark.parametrize("name,params,torch_fill", TORCH_TWINS, ids=[t[0] for t in TORCH_TWINS])
def test_same_generator_state_gives_torchs_values(name, params, torch_fill):
    # Same algorithm and same draws: equal up to the last-ulp rounding of the scale.
    ours = draw(name, (48, 40), seed=3, **params)
    theirs = torch_fill(torch.empty(48, 40), torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_torch_default_reproduces_nn_linear_bits():
    # nn.Linear draws from the global RNG; fork it so this test leaves it as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        layer = torch.nn.Linear(30, 20)
    g = torch.Generator().manual_seed(11)
    w = initlab.init_(torch.empty(20, 30), "torch_default", generator=g)
    b = initlab.init_(torch.empty(20), "torch_default", generator=g, fan_in=30)
    assert torch.equal(w, layer.weight.detach())
    torch.testing.assert_close(b, layer.bias.detach(), rtol=1e-6, atol=1e-7)


# --- exact structural properties ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 64), (32, 80), (80, 32), (16, 8, 3, 3), (8, 16, 5)])
@pytest.mark.parametrize("gain", [1.0, 1.7])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, gain):
    w = draw("orthogonal", shape, gain=gain).double().reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    torch.testing.assert_close(gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dim,groups", [(1, 1), (2, 1), (2, 2), (3, 1)])
def test_dirac_convolution_returns_its_input(dim, groups, gen):
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[dim]
    channels = 4
    shape = (channels, channels // groups) + (3,) * dim
    w = draw("dirac", shape, groups=groups)
    x = torch.randn((2, channels) + (6,) * dim, generator=gen)
    y = conv(x, w, padding=1, groups=groups)
    torch.testing.assert_close(y, x)


def test_dirac_pads_extra_output_channels_with_zeros(gen):
    w = draw("dirac", (6, 4, 3, 3))
    x = torch.randn(2, 4, 5, 5, generator=gen)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    torch.testing.assert_close(y[:, :4], x)
    assert torch.count_nonzero(y[:, 4:]) == 0


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_delta_orthogonal_is_an_isometry_with_circular_padding(dim, gain, gen):
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[dim]
    out_c, in_c, k = 12, 8, 3  # out >= in: the centre tap has orthonormal columns
    w = draw("delta_orthogonal", (out_c, in_c) + (k,) * dim, gain=gain).double()
    x = torch.randn((3, in_c) + (7,) * dim, generator=gen, dtype=torch.float64)
    x_padded = torch.nn.functional.pad(x, (1, 1) * dim, mode="circular")
    y = conv(x_padded, w)
    assert y.shape[2:] == x.shape[2:]
    torch.testing.assert_close(y.flatten(1).norm(dim=1), gain * x.flatten(1).norm(dim=1), rtol=1e-5, atol=0)
    # Only the centre tap is nonzero.
    centre = (slice(None), slice(None)) + (k // 2,) * dim
    assert torch.count_nonzero(w) == torch.count_nonzero(w[centre])


def test_identity_is_eye():
    assert torch.equal(draw("identity", (5, 7)), torch.eye(5, 7))


@pytest.mark.parametrize("shape", [(100, 50), (40, 8, 3, 3)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.93])
def test_sparse_zeros_per_unit_and_he_variance(shape, sparsity):
    w = draw("sparse", shape, sparsity=sparsity).reshape(shape[0], -1)
    fan_in = w.shape[1]
    zeros_per_unit = (w == 0).sum(dim=1)
    assert torch.all(zeros_per_unit == math.ceil(sparsity * fan_in))
    # Expected incoming squared norm per unit is 2 (He): check the layer mean within 3 SE.
    kept = fan_in - math.ceil(sparsity * fan_in)
    sq = (w.double() ** 2).sum(dim=1)
    se = math.sqrt(2 * 4 / kept / shape[0])  # Var of a sum of k chi2(1)*(2/k) terms, averaged over units
    assert abs(float(sq.mean()) - 2.0) < 4 * se


def test_sparse_zero_pattern_differs_between_units_and_comes_from_the_generator():
    a = draw("sparse", (64, 100), seed=1, sparsity=0.5) == 0
    b = draw("sparse", (64, 100), seed=2, sparsity=0.5) == 0
    assert not torch.equal(a, b)
    assert len({tuple(row.tolist()) for row in a}) == 64


def test_sparse_with_std_draws_nonzeros_from_that_normal():
    w = draw("sparse", BIG_2D, sparsity=0.3, std=0.05).flatten()
    nz = w[w != 0].double().numpy()
    assert stats.kstest(nz, stats.norm(0, 0.05).cdf).pvalue > KS_P_MIN


@pytest.mark.parametrize("shape,k", [((50, 200), 15), ((20, 4, 3, 3), 15), ((10, 6), 15), ((30, 40), 1)])
def test_sparse_martens_exactly_k_nonzero_incoming(shape, k):
    w = draw("sparse_martens", shape, k=k).reshape(shape[0], -1)
    assert torch.all((w != 0).sum(dim=1) == min(k, w.shape[1]))


def test_sparse_martens_nonzeros_are_unit_gaussian():
    w = draw("sparse_martens", (2000, 300)).flatten()
    nz = w[w != 0].double().numpy()
    assert nz.size == 2000 * 15
    assert stats.kstest(nz, stats.norm(0, 1).cdf).pvalue > KS_P_MIN


def test_positive_is_strictly_positive():
    assert bool((draw("positive", BIG_CONV) > 0).all())


@pytest.mark.parametrize("name,value", [("zeros", 0.0), ("ones", 1.0), ("constant", 0.01)])
def test_constant_schemes(name, value):
    for shape in fitting_shapes(name):
        assert bool((draw(name, shape) == value).all())
    assert bool((draw("constant", (3, 4), val=-2.5) == -2.5).all())


def _looks_linear_relu_net(widths, gain=1.0, seed=0, conv=False):
    """A plain ReLU chain (zero biases) with looks_linear weights: first, hidden..., last."""
    layers = []
    g = torch.Generator().manual_seed(seed)
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layer = torch.nn.Conv1d(a, b, 3, padding=1) if conv else torch.nn.Linear(a, b)
        position = "first" if i == 0 else "last" if i == len(widths) - 2 else "hidden"
        with torch.no_grad():
            initlab.init_(layer.weight, "looks_linear", generator=g, gain=gain, position=position)
            layer.bias.zero_()
        layers += [layer, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).double()


@pytest.mark.parametrize("conv", [False, True])
def test_looks_linear_relu_network_computes_a_linear_map(conv, gen):
    # Exact: relu(u) - relu(-u) = u at every layer, so f(a x + b y) = a f(x) + b f(y) for any signs.
    widths = [6, 16, 16, 16, 16, 4] if not conv else [3, 8, 8, 8, 2]
    net = _looks_linear_relu_net(widths, gain=1.3, conv=conv)
    shape = (5, widths[0]) + ((7,) if conv else ())
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    y = torch.randn(shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(2.0 * x - 3.0 * y), 2.0 * net(x) - 3.0 * net(y), rtol=1e-10, atol=1e-10)


def test_looks_linear_deep_relu_jacobian_is_an_isometry_times_gain(gen):
    # Square blocks: the map is g^L Q_L ... Q_1, so every singular value equals g^L, at 60 layers
    # (to the float32 orthogonality of each drawn Q, ~1e-7 per layer: measured 2e-6 over 60).
    widths = [16] + [32] * 59 + [16]
    for gain in (1.0, 1.01):
        net = _looks_linear_relu_net(widths, gain=gain)
        jac = torch.autograd.functional.jacobian(net, torch.randn(1, 16, generator=gen, dtype=torch.float64))
        singular = torch.linalg.svdvals(jac.reshape(16, 16))
        torch.testing.assert_close(singular, torch.full((16,), gain**60, dtype=torch.float64), rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    "position,shape", [("hidden", (128, 96)), ("first", (96, 40)), ("last", (10, 128)), ("hidden", (32, 16, 3, 3))]
)
def test_looks_linear_blocks_are_mirrored_orthogonal(position, shape):
    w = draw("looks_linear", shape, gain=1.5, position=position).double()
    out, inp = shape[0], shape[1]
    if position == "first":
        q, mirror = w[: out // 2], w[out // 2 :]
    elif position == "last":
        q, mirror = w[:, : inp // 2], w[:, inp // 2 :]
    else:
        q = w[: out // 2, : inp // 2]
        mirror = w[: out // 2, inp // 2 :]
        torch.testing.assert_close(w[out // 2 :], -w[: out // 2])
    torch.testing.assert_close(mirror, -q)
    q = q.reshape(q.shape[0], -1)
    gram = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
    torch.testing.assert_close(gram, 1.5**2 * torch.eye(min(q.shape), dtype=torch.float64), atol=1e-5, rtol=0)


def test_looks_linear_needs_even_halves():
    with pytest.raises(ValueError, match=r"out=7 is odd"):
        initlab.init_(torch.empty(7, 8), "looks_linear")
    with pytest.raises(ValueError, match=r"in=5 is odd"):
        initlab.init_(torch.empty(10, 5), "looks_linear", position="last")
    initlab.init_(torch.empty(8, 5), "looks_linear", position="first")  # the input side is not mirrored
    with pytest.raises(ValueError, match=r"position='middle'.*hidden \| first \| last"):
        initlab.get_scheme("looks_linear", position="middle")


EXACT_PROPERTY_SCHEMES = {
    "orthogonal",
    "dirac",
    "delta_orthogonal",
    "identity",
    "sparse",
    "sparse_martens",
    "positive",
    "zeros",
    "ones",
    "constant",
    "looks_linear",
}


def test_every_scheme_is_covered():
    covered = {c[0] for c in DISTRIBUTION_CASES} | EXACT_PROPERTY_SCHEMES
    assert set(initlab.list_schemes()) <= covered, set(initlab.list_schemes()) - covered


# --- rules every scheme obeys -------------------------------------------------------------

ALL = initlab.list_schemes()


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_bits_and_global_rng_untouched(name):
    state = torch.get_rng_state()
    for shape in fitting_shapes(name):
        a, b = draw(name, shape, seed=5), draw(name, shape, seed=5)
        assert torch.equal(a, b)
        assert a.shape == shape and a.dtype == torch.float32
    assert torch.equal(state, torch.get_rng_state())


RANDOM_SCHEMES = sorted(set(ALL) - {"zeros", "ones", "constant", "identity", "dirac"})


@pytest.mark.parametrize("name", RANDOM_SCHEMES)
def test_different_seeds_differ(name):
    shape = fitting_shapes(name)[-1]
    assert not torch.equal(draw(name, shape, seed=1), draw(name, shape, seed=2))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_in_is_dtype_out(name, dtype):
    shape = fitting_shapes(name)[0]
    t = torch.full(shape, float("nan"), dtype=dtype)
    out = initlab.init_(t, name, generator=torch.Generator().manual_seed(0))
    assert out is t and t.dtype == dtype
    assert bool(torch.isfinite(t).all())
    # Every dtype gets the float32 draw, cast: same weights whatever the model's precision.
    assert torch.equal(t, draw(name, shape, seed=0).to(dtype))


def test_orthogonal_in_bfloat16_is_orthogonal_to_bf16_precision():
    t = initlab.init_(torch.empty(64, 64, dtype=torch.bfloat16), "orthogonal")
    gram = t.float() @ t.float().T
    torch.testing.assert_close(gram, torch.eye(64), atol=3e-2, rtol=0)


def test_init_fills_parameters_in_place_without_autograd():
    layer = torch.nn.Linear(10, 5)
    out = initlab.init_(layer.weight, "xavier_uniform", generator=torch.Generator().manual_seed(0))
    assert out is layer.weight and layer.weight.requires_grad and layer.weight.grad_fn is None


@pytest.mark.parametrize("name", ALL)
def test_config_round_trips_through_json(name):
    spec = initlab.get_scheme(name)
    config = json.loads(json.dumps(spec.to_config()))
    again = initlab.Scheme.from_config(config)
    assert again == spec and hash(again) == hash(spec)
    assert again.to_config() == spec.to_config()
    shape = fitting_shapes(name)[0]
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(spec.sample(shape, generator=g1), again.sample(shape, generator=g2))


def test_config_round_trip_keeps_non_default_parameters():
    spec = initlab.get_scheme("kaiming", mode="fan_out", nonlinearity="leaky_relu", a=0.2)
    assert spec.name == "he_normal"
    assert initlab.Scheme.from_config(json.dumps(spec.to_config())).params == {
        "a": 0.2,
        "mode": "fan_out",
        "nonlinearity": "leaky_relu",
    }


def test_aliases_are_explicit_and_resolve():
    table = initlab.schemes.aliases()
    for alias in ("xavier", "glorot", "he", "kaiming", "gaussian", "random", "zero", "lecun", "eye"):
        assert alias in table
        assert initlab.get_scheme(alias).name == table[alias]
    assert table["he"] == "he_normal" and table["xavier"] == "xavier_uniform"


def test_every_definition_documents_formula_and_source():
    for d in definitions():
        doc = d.sample.__doc__ or ""
        assert ".. math::" in doc, d.name
        assert d.formula and d.reference, d.name


# --- bad input --------------------------------------------------------------------------


def test_unknown_scheme_suggests_the_nearest_names():
    with pytest.raises(ValueError, match=r"unknown scheme 'he_norml'.*he_normal"):
        initlab.get_scheme("he_norml")
    with pytest.raises(ValueError, match=r"xavier_uniform"):
        initlab.init_(torch.empty(3, 3), "xavier_unifrom")


@pytest.mark.parametrize(
    "name,params,pattern",
    [
        ("he_normal", {"mode": "fan_sum"}, r"mode='fan_sum'.*fan_in \| fan_out"),
        ("xavier_uniform", {"gain": -1}, r"gain=-1.*> 0"),
        ("xavier_uniform", {"gain": float("nan")}, r"gain=nan"),
        ("sparse", {"sparsity": 1.0}, r"sparsity=1.0.*\[0, 1\)"),
        ("sparse_martens", {"k": 2.5}, r"k=2.5.*integer"),
        ("variance_scaling", {"distribution": "cauchy"}, r"distribution='cauchy'.*truncated_normal"),
        ("uniform", {"a": 2.0, "b": 1.0}, r"a < b"),
        ("he_normal", {"nonlinearity": "relux"}, r"nonlinearity='relux'"),
        ("constant", {"val": "1"}, r"val='1'"),
    ],
)
def test_invalid_parameter_is_rejected_when_the_spec_is_built(name, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        initlab.get_scheme(name, **params)


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown parameter 'gian'.*'gain'.*Allowed parameters: gain"):
        initlab.get_scheme("xavier_uniform", gian=2.0)


@pytest.mark.parametrize(
    "name,shape,pattern",
    [
        ("he_normal", (10,), r"cannot fill a bias or other 1-D tensor of shape \(10,\).*>= 2-D"),
        ("orthogonal", (), r"0-D tensor"),
        ("identity", (3, 3, 3), r"3-D tensor.*needs a 2-D"),
        ("dirac", (4, 4), r"needs a 3-D to 5-D"),
        ("delta_orthogonal", (4, 4, 3, 3, 3, 3), r"6-D tensor"),
    ],
)
def test_tensor_a_scheme_cannot_fill(name, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        initlab.init_(torch.empty(shape), name)


def test_dirac_groups_must_divide_out_channels():
    with pytest.raises(ValueError, match=r"out_channels=6 is not divisible by groups=4"):
        initlab.init_(torch.empty(6, 2, 3), "dirac", groups=4)


def test_integer_tensors_and_foreign_generators_are_refused():
    with pytest.raises(ValueError, match="floating"):
        initlab.init_(torch.empty(3, 3, dtype=torch.int64), "he_normal")
    with pytest.raises(ValueError, match="torch.Generator"):
        initlab.init_(torch.empty(3, 3), "he_normal", generator=np.random.default_rng(0))


def test_command_line_specs_round_trip():
    from initlab.schemes import canonical_spec, parse_spec, scheme_from_spec, split_specs

    assert parse_spec("he_normal(mode=fan_out, a=0.1)") == ("he_normal", {"mode": "fan_out", "a": 0.1})
    assert canonical_spec("kaiming( a=0.1 ,mode=fan_out)") == "he_normal(a=0.1, mode=fan_out)"
    assert canonical_spec("glorot") == "xavier_uniform"
    assert split_specs("zeros,variance_scaling(scale=2, mode=fan_avg),auto") == [
        "zeros",
        "variance_scaling(scale=2, mode=fan_avg)",
        "auto",
    ]
    assert scheme_from_spec("sparse(sparsity=0.5, std=None)") == initlab.get_scheme("sparse", sparsity=0.5)
    with pytest.raises(ValueError, match="mode='fan_sum'"):
        canonical_spec("he_normal(mode=fan_sum)")
    with pytest.raises(ValueError, match="not key=value"):
        parse_spec("he_normal(fan_out)")
