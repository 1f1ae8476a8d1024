"""initlab.initialize: seeding by name, determinism, the global RNG, LSUV, fallbacks of introspection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.policy import Plan, initialize, introspect, plan
from initlab.seeding import derive_generator


class A(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


class B(A):
    """A with one more hidden layer between fc2 and out."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = nn.Linear(16, 16)

    def forward(self, x):
        return self.out(F.relu(self.extra(F.relu(self.fc2(F.relu(self.fc1(x)))))))


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_same_seed_same_bits_and_another_seed_other_bits():
    a1, a2, a3 = A(), A(), A()
    initialize(a1, seed=7)
    initialize(a2, seed=7)
    initialize(a3, seed=8)
    p1, p2, p3 = params(a1), params(a2), params(a3)
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert not torch.equal(p1["fc1.weight"], p3["fc1.weight"])


def test_each_parameter_draws_from_the_generator_of_its_name():
    a = A()
    p = initialize(a, seed=11)
    entry = p["fc1.weight"]
    expected = torch.empty(16, 8)
    from initlab.schemes import get_scheme

    get_scheme(entry.scheme, **entry.params).init_(expected, generator=derive_generator(11, "fc1.weight"))
    assert torch.equal(a.fc1.weight, expected)


def test_adding_a_layer_leaves_every_other_layer_bit_identical():
    a, b = A(), B()
    initialize(a, seed=3)
    initialize(b, seed=3)
    pa, pb = params(a), params(b)
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name


def test_cloned_transformer_layers_come_out_different():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 3, enable_nested_tensor=False)
    initialize(enc, seed=0)
    w = [enc.layers[i].linear1.weight for i in range(3)]
    q = [enc.layers[i].self_attn.in_proj_weight for i in range(3)]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert not torch.equal(q[0], q[1])
    # Per q/k/v block Xavier: Var = 2 / (E + E) = 1/16 for E = 16 (768 draws per block, 15%).
    assert q[0][:16].var().item() == pytest.approx(1 / 16, rel=0.15)


def test_initialize_never_touches_the_global_rng():
    net = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.5), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    initialize(net, seed=1)
    initialize(net, "auto+lsuv", seed=1, data=x)
    initialize(net, "lsuv", seed=1, data=x)
    assert torch.equal(state, torch.get_rng_state())
    assert net.training  # the eval-mode forward passes restored the flag


def test_half_precision_parameters_keep_their_dtype_and_values_match_float32_draws():
    half = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).to(torch.bfloat16)
    full = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    initialize(half, seed=0)
    initialize(full, seed=0)
    assert half[0].weight.dtype == torch.bfloat16
    assert torch.equal(half[0].weight, full[0].weight.to(torch.bfloat16))


def test_initialize_applies_a_saved_plan_and_reports_the_seed():
    a = A()
    p = plan(a, {"fc2.weight": "orthogonal"})
    result = initialize(a, Plan.from_dict(p.to_dict()), seed=4)
    assert result.seed == 4 and result["fc2.weight"].scheme == "orthogonal"
    w = a.fc2.weight
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)


def test_bad_seed_is_a_user_error():
    with pytest.raises(ValueError, match="seed"):
        initialize(A(), seed=1.5)


# --- LSUV -------------------------------------------------------------------------------------------


def deep_relu(depth: int = 8, width: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, width),
        nn.ReLU(),
    ]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


@pytest.mark.parametrize("policy", ["lsuv", "auto+lsuv"])
def test_lsuv_reaches_unit_output_variance_on_the_batch(policy):
    net = deep_relu()
    x = torch.randn(128, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    p = initialize(net, policy, seed=0, data=x)
    layers = [name for name, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert [r.layer for r in p.lsuv] == layers  # execution order, every weight layer
    assert all(r.converged and 0 <= r.iterations <= 10 for r in p.lsuv)
    assert sum(r.iterations for r in p.lsuv) >= len(layers) // 2  # it did rescale
    if policy == "lsuv":
        assert p["3.weight"].source == "lsuv" and p["3.weight"].scheme == "orthogonal"
    # Measure independently of the records: every layer's output variance is 1 within 0.1.
    outputs = {}
    for name in layers:
        dict(net.named_modules())[name].register_forward_hook(
            lambda m, i, o, _n=name: outputs.__setitem__(_n, o.var().item())
        )
    with torch.no_grad():
        net(x)
    assert all(abs(v - 1) < 0.1 for v in outputs.values()), outputs
    assert "LSUV" in str(p) and p.to_dict()["lsuv"][0]["layer"] == "0"
    assert Plan.from_dict(p.to_dict()) == p


def test_lsuv_scale_factors_are_recorded():
    net = deep_relu(depth=2)
    x = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    p = initialize(net, "lsuv", seed=0, data=x)
    for record in p.lsuv:
        # Biases are zero and earlier layers are final: the output variance scales with scale^2.
        assert record.variance_after == pytest.approx(record.scale**2 * record.variance_before, rel=1e-4)
        assert record.iterations >= 1 and abs(record.variance_after - 1) < 0.1


def test_lsuv_without_data_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lsuv.*needs data"):
        initialize(deep_relu(), "lsuv")
    with pytest.raises(ValueError, match=r"auto\+lsuv.*needs data"):
        initialize(deep_relu(), "auto+lsuv")
    with pytest.raises(ValueError, match="at least 2 samples"):
        initialize(deep_relu(), "lsuv", data=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="forward failed on data"):
        initialize(deep_relu(), "lsuv", data=torch.zeros(4, 3, 9, 9))


def test_lsuv_skips_zero_initialized_residual_layers():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 2)

        def forward(self, x):
            return self.head(x + self.b(F.relu(self.a(x))))

    net = Res()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    p = initialize(net, "auto+lsuv", seed=0, data=x)
    assert [r.layer for r in p.lsuv] == ["a", "head"]
    assert not net.b.weight.any()


# --- introspection fallbacks --------------------------------------------------------------------------


class DataDependent(nn.Module):
    """Control flow on values: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 16)
        self.act = nn.SiLU()  # registered between fc2 and out, the order it runs in
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        if h.sum() > -1e9:
            h = self.act(self.fc2(h))
        return self.out(h)


def test_untraceable_model_uses_hooks_with_an_example_input():
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    p = plan(DataDependent(), example_input=x)
    assert p.method == "hooks" and any("torch.fx" in n for n in p.notes)
    assert p["fc1.weight"].scheme == "xavier_uniform" and "functional tanh" in p["fc1.weight"].reason
    assert p["fc2.weight"].params["nonlinearity"] == "silu"
    assert p["out.weight"].role == "output"


def test_untraceable_model_without_input_uses_registration_order_and_says_so():
    p = plan(DataDependent())
    assert p.method == "modules"
    assert any("registration order" in n for n in p.notes)
    assert p["fc1.weight"].scheme == "lecun_normal"  # the functional tanh is invisible here
    assert p["fc2.weight"].params["nonlinearity"] == "silu"


def test_hooks_match_a_leaky_relu_slope_from_values():
    class Leaky(DataDependent):
        def forward(self, x):
            h = F.leaky_relu(self.fc1(x), 0.3)
            if h.sum() > -1e9:
                h = self.fc2(h)
            return self.out(h)

    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    g = introspect(Leaky(), x)
    assert g.method == "hooks"
    assert g.layers["fc1"].activation == "leaky_relu"
    assert g.layers["fc1"].activation_param == pytest.approx(0.3, rel=1e-4)
    assert g.layers["fc2"].activation == "linear"


def test_lsuv_reports_a_layer_the_forward_never_calls():
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.spare, self.b = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    p = initialize(Unused(), "lsuv", seed=0, data=x)
    spare = next(r for r in p.lsuv if r.layer == "spare")
    assert not spare.converged and spare.variance_after is None and "not called" in spare.note
    assert Plan.from_dict(p.to_json()) == p


# --- hooks: residual branches found on values; warnings for kept parameters ----------------------


class DataDependentResidual(nn.Module):
    """Untraceable (control flow on values) residual MLP: hooks find x + f(x) on values."""

    def __init__(self, width: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Linear(8, width)
        self.fc1 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.act = nn.ModuleList(nn.ReLU() for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        h = self.stem(x)
        if h.sum() > -1e9:
            for a, act, b in zip(self.fc1, self.act, self.fc2):
                h = h + b(act(a(h)))
        return self.head(self.norm(h))


def test_hooks_find_residual_branches_on_values():
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    g = introspect(DataDependentResidual(), x)
    assert g.method == "hooks"
    assert [b.end for b in g.branches] == ["fc2.0", "fc2.1", "fc2.2"]
    assert g.branches[0].layers == ("fc1.0", "fc2.0") and g.branches[0].post_norm is None
    p = plan(DataDependentResidual(), example_input=x)
    assert [p[f"fc2.{i}.weight"].scheme for i in range(3)] == ["zeros"] * 3


def test_auto_gpt2_scales_branch_ends_by_the_number_of_branches():
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    p = plan(DataDependentResidual(), "auto+gpt2", example_input=x)
    end = p["fc2.0.weight"]
    assert end.scheme == "variance_scaling" and end.params["scale"] == pytest.approx(1 / 3)
    assert "GPT-2" in end.reason


def test_many_kept_parameters_warn_and_name_them():
    class Opaque(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.ones(4, 4))
            self.other = nn.Parameter(torch.ones(4, 4))
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x @ self.table @ self.other)

    with pytest.warns(UserWarning, match=r"2 of 4 parameters .*table, other"):
        plan(Opaque())


def test_grouped_and_depthwise_convs_use_their_true_fans():
    net = nn.Sequential(
        nn.Conv2d(16, 16, 3, groups=16, padding=1),
        nn.Tanh(),
        nn.ConvTranspose2d(16, 32, 3, groups=8),
        nn.ReLU(),
        nn.Conv2d(32, 4, 1),
    )
    p = initialize(net, seed=0)
    assert "16-group" in p["0.weight"].reason
    # Xavier for tanh on a depthwise 3x3: fan_in = fan_out = 9, Var = (5/3)^2 / 9 (torch's fan_out says 144)
    assert net[0].weight.var().item() == pytest.approx((5 / 3) ** 2 / 9, rel=0.15)
    # He for a grouped transposed conv: forward fan-in = in/groups * k = 2 * 9, Var = 2 / 18
    assert net[2].weight.var().item() == pytest.approx(2 / 18, rel=0.1)
