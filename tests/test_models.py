"""initlab.models: shapes, layer counts, activation placement, factories, determinism."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch
from torch import nn

from initlab import activations
from initlab.errors import UserError
from initlab.models import MLP, ResidualBlock, architectures, build, cnn, default_init_, mlp, rescnn, resmlp
from initlab.seeding import derive_generator


def _x(shape, n=6, seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- MLP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_layers_widths_and_output(depth):
    model = mlp(20, 5, width=16, depth=depth)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert [(m.in_features, m.out_features) for m in linears] == (
        [(20, 16)] + [(16, 16)] * (depth - 1) + [(16, 5)] if depth else [(20, 5)]
    )
    assert model.widths == (20,) + (16,) * depth + (5,)
    assert model(_x((4, 5))).shape == (6, 5)  # Flatten first: any input shape with 20 values


def test_mlp_activation_follows_each_hidden_linear_and_not_the_output():
    model = mlp(8, 3, width=4, depth=2, activation="tanh")
    assert [name for name, _ in model.named_children()] == ["flatten", "fc1", "act1", "fc2", "act2", "out"]
    kids = list(model.children())
    for i, module in enumerate(kids):
        if isinstance(module, nn.Linear) and module is not model.out:
            assert isinstance(kids[i + 1], nn.Tanh)
    assert kids[-1] is model.out


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_name_builds_its_module(name):
    model = mlp(6, 2, width=5, depth=2, activation=name)
    expected = type(activations.activation_module(name))
    assert isinstance(model.act1, expected) and isinstance(model.act2, expected)
    assert model.activation == name
    x = _x((6,))
    reference = activations.get_activation(name)(model.fc1(x))
    torch.testing.assert_close(model.act1(model.fc1(x)), reference)


def test_linear_activation_makes_the_network_linear():
    model = build("mlp", input_shape=(7,), num_classes=3, width=9, depth=3, activation="linear", bias=False)
    a, b = _x((7,), seed=1), _x((7,), seed=2)
    torch.testing.assert_close(model(2.0 * a - 3.0 * b), 2.0 * model(a) - 3.0 * model(b), atol=1e-5, rtol=1e-5)
    assert all(isinstance(m, nn.Identity) for n, m in model.named_children() if n.startswith("act"))


def test_mlp_without_bias():
    assert all(m.bias is None for m in mlp(4, 2, width=3, depth=2, bias=False).linears())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width: got 0; expected an integer >= 1"),
        ({"depth": -1}, "depth: got -1; expected an integer >= 0"),
        ({"activation": "relux"}, "unknown activation 'relux'. Did you mean 'relu'"),
    ],
)
def test_mlp_bad_arguments(kwargs, message):
    args = {"width": 4, "depth": 1, **kwargs}
    with pytest.raises(UserError, match=message):
        mlp(3, 2, **args)


# --- CNN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "depth", "head_in"),
    [
        ((1, 28, 28), 2, 32 * 7 * 7),
        ((1, 8, 8), 3, 32 * 1 * 1),
        ((3, 5, 5), 4, 32 * 1 * 1),
        ((40,), 2, 32 * 10),
        ((2, 16), 1, 32 * 8),
    ],
)
def test_cnn_shapes_and_pooling(shape, depth, head_in):
    model = cnn(shape, 10, depth=depth)
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert len(convs) == depth and all(c.out_channels == 32 for c in convs)
    assert isinstance(convs[0], nn.Conv2d if len(shape) == 3 else nn.Conv1d)
    assert model.out.in_features == head_in
    assert model(_x(shape)).shape == (6, 10)
    kids = list(model.children())
    for i, module in enumerate(kids):
        if isinstance(module, nn.modules.conv._ConvNd):
            assert isinstance(kids[i + 1], nn.ReLU)


def test_cnn_refuses_unusable_input_shape():
    with pytest.raises(UserError, match=r"input_shape=\(1, 2, 3, 4\) is invalid for a CNN"):
        cnn((1, 2, 3, 4), 10)
    with pytest.raises(UserError, match="input_shape"):
        cnn((1, 0, 3), 10)


# --- residual nets ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_resmlp_structure_and_identity_blocks(norm):
    model = build("resmlp", input_shape=(12,), num_classes=4, width=10, depth=3, norm=norm, seed=1)
    blocks = [m for m in model.children() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3
    names = [n for n, _ in blocks[0].named_children()]
    assert names == (["norm1", "act1", "fc1", "norm2", "act2", "fc2"] if norm else ["act1", "fc1", "act2", "fc2"])
    norm_type = {None: None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm]
    if norm_type:
        assert sum(isinstance(m, norm_type) for m in model.modules()) == 3 * 2 + 1
    model.eval()
    x = _x((12,), n=8)
    with torch.no_grad():
        for block in blocks:  # a zero last layer makes every block the identity
            block.fc2.weight.zero_()
            block.fc2.bias.zero_()
        head = model.out(model.act(model.norm(model.stem(x)) if norm else model.stem(x)))
    torch.testing.assert_close(model(x), head)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_rescnn_shapes_and_norms(norm):
    model = rescnn((1, 8, 8), 10, width=6, depth=2, norm=norm)
    assert model(_x((1, 8, 8))).shape == (6, 10)
    assert model.out.in_features == 6 * 2 * 2
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 2
    expected = {None: 0, "batch": 5, "layer": 5}[norm]
    norm_type = nn.BatchNorm2d if norm == "batch" else nn.GroupNorm
    assert sum(isinstance(m, norm_type) for m in model.modules()) == expected


def test_bad_norm_is_a_user_error():
    with pytest.raises(UserError, match="norm='group' is invalid"):
        resmlp(4, 2, width=3, depth=1, norm="group")


# --- build: names, determinism, initialization ------------------------------------------------


def test_architectures_and_defaults():
    assert architectures() == ["cnn", "mlp", "rescnn", "resmlp", "transformer"]
    model = build("mlp", input_shape=(1, 28, 28), num_classes=10)
    assert isinstance(model, MLP) and model.widths == (784, 256, 256, 10)  # the article's network
    assert build("cnn", input_shape=(1, 8, 8), num_classes=10).spec["width"] == 32


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resmlp", "rescnn"])
def test_build_leaves_global_rng_alone_and_ignores_it(arch):
    kwargs = {"input_shape": (1, 8, 8), "num_classes": 10, "width": 8, "depth": 2, "seed": 3}
    if arch.startswith("res"):
        kwargs["norm"] = "batch"
    with torch.random.fork_rng(devices=[]):  # the test may set the global RNG; the library may not
        torch.manual_seed(1)
        before = torch.get_rng_state()
        a = _params(build(arch, **kwargs))
        assert torch.equal(torch.get_rng_state(), before)
        torch.manual_seed(2)
        b = _params(build(arch, **kwargs))
    c = _params(build(arch, **{**kwargs, "seed": 4}))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same bits, whatever the global RNG
    weights = [k for k in a if k.endswith("weight") and a[k].ndim >= 2]
    assert weights and all(not torch.equal(a[k], c[k]) for k in weights)


def test_adding_a_layer_changes_no_other_layer():
    shallow = _params(build("mlp", input_shape=(5,), num_classes=3, width=7, depth=2, seed=9))
    deep = _params(build("mlp", input_shape=(5,), num_classes=3, width=7, depth=3, seed=9))
    for key in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight"):
        assert torch.equal(shallow[key], deep[key])


def test_weights_are_torch_defaults_from_named_generators():
    model = build("cnn", input_shape=(2, 6, 6), num_classes=4, width=5, depth=1, seed=11)
    expected = torch.empty(5, 2, 3, 3)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5), generator=derive_generator(11, "conv1.weight"))
    assert torch.equal(model.conv1.weight, expected)
    bound = 1 / math.sqrt(2 * 3 * 3)
    expected_bias = torch.empty(5).uniform_(-bound, bound, generator=derive_generator(11, "conv1.bias"))
    assert torch.equal(model.conv1.bias, expected_bias)


def test_norm_layers_start_at_one_and_zero():
    model = build("resmlp", input_shape=(4,), num_classes=2, width=6, depth=1, norm="batch")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            assert torch.equal(m.weight, torch.ones(6)) and torch.equal(m.bias, torch.zeros(6))
            assert torch.equal(m.running_var, torch.ones(6)) and int(m.num_batches_tracked) == 0


def test_default_init_rewrites_a_plain_module():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    default_init_(net, seed=5)
    first = net[0].weight.detach().clone()
    default_init_(net, seed=5)
    assert torch.equal(net[0].weight, first)
    assert net[2].bias.abs().max() <= 1 / math.sqrt(4)


def test_unknown_model_and_extra_arguments():
    with pytest.raises(UserError, match="unknown model 'mlpp'. Did you mean 'mlp'"):
        build("mlpp", input_shape=(4,), num_classes=2)
    with pytest.raises(UserError, match="model 'mlp' takes no parameter 'norm'; allowed extras: bias"):
        build("mlp", input_shape=(4,), num_classes=2, norm="batch")
    with pytest.raises(UserError, match="num_classes: got 0; expected an integer >= 1"):
        build("mlp", input_shape=(4,), num_classes=0)


# --- "module:function" factories ---------------------------------------------------------------

FACTORY_SOURCE = """
from torch import nn

calls = []

def narrow(input_shape, num_classes):
    calls.append(("narrow", input_shape, num_classes))
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_classes))

def wide(**kwargs):
    calls.append(("wide", kwargs))
    return nn.Sequential(nn.Flatten(), nn.Linear(kwargs["input_shape"][-1], kwargs["num_classes"]))

def with_extra(input_shape, num_classes, hidden=3):
    calls.append(("with_extra", hidden))
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.Linear(hidden, num_classes))

def needs_more(input_shape, num_classes, dropout):
    return nn.Linear(1, 1)

def not_a_model(input_shape, num_classes):
    return "model"

class Zoo:
    @staticmethod
    def tiny(num_classes):
        return nn.Linear(2, num_classes)

VALUE = 3
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    name = "initlab_test_factories_mod"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORY_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return name


def test_factory_receives_only_what_it_accepts(factories):
    import importlib

    mod = importlib.import_module(factories)
    model = build(f"{factories}:narrow", input_shape=(1, 5), num_classes=3, width=64, seed=0)
    assert model[1].weight.shape == (3, 5)
    assert mod.calls[-1] == ("narrow", (1, 5), 3)
    build(f"{factories}:wide", input_shape=(5,), num_classes=3, depth=2)
    assert mod.calls[-1] == ("wide", {"input_shape": (5,), "num_classes": 3, "activation": "relu", "depth": 2})
    build(f"{factories}:with_extra", input_shape=(5,), num_classes=3, hidden=7)
    assert mod.calls[-1] == ("with_extra", 7)
    assert build(f"{factories}:Zoo.tiny", input_shape=(2,), num_classes=4).weight.shape == (4, 2)


def test_factory_models_are_deterministic_and_leave_global_rng_alone(factories):
    before = torch.get_rng_state()
    a = build(f"{factories}:with_extra", input_shape=(5,), num_classes=3, seed=2)
    b = build(f"{factories}:with_extra", input_shape=(5,), num_classes=3, seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    expected = torch.empty(3, 5)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5), generator=derive_generator(2, "1.weight"))
    assert torch.equal(a[1].weight, expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("initlab_no_such_module_xyz:make", "cannot import module 'initlab_no_such_module_xyz' for"),
        ("{mod}:missing", "module '{mod}' has no attribute 'missing'"),
        ("{mod}:VALUE", "is not callable"),
        ("{mod}:not_a_model", "returned a str, not an nn.Module"),
        ("{mod}:needs_more", "needs parameter 'dropout'"),
        (":make", "target: got ':make'; expected 'package.module:function'"),
    ],
)
def test_factory_failures_are_user_errors_naming_the_factory(factories, spec, message):
    spec, message = spec.format(mod=factories), message.format(mod=factories)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(spec, input_shape=(5,), num_classes=3)


def test_factory_refuses_unknown_extras(factories):
    with pytest.raises(UserError, match="takes no parameter 'hidden'"):
        build(f"{factories}:narrow", input_shape=(5,), num_classes=3, hidden=4)
