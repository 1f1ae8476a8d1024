"""initlab.plan: the auto rules on a zoo of models, policies, overrides, JSON, bad input."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.policy import Plan, initialize, plan
from initlab.policy.rules import DEEP_PLAIN_MIN_DEPTH


def mlp(
    act: type[nn.Module] | nn.Module, depth: int = 3, width: int = 32, inp: int = 16, out: int = 5
) -> nn.Sequential:
    layers: list[nn.Module] = []
    fan = inp
    for _ in range(depth):
        layers += [nn.Linear(fan, width), act() if isinstance(act, type) else act]
        fan = width
    return nn.Sequential(*layers, nn.Linear(fan, out))


# --- activation families -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "act, scheme, params",
    [
        (nn.ReLU, "he_normal", {"nonlinearity": "relu", "a": 0.0}),
        (nn.LeakyReLU(0.2), "he_normal", {"nonlinearity": "leaky_relu", "a": 0.2}),
        (nn.GELU, "he_normal", {"nonlinearity": "gelu"}),
        (nn.SiLU, "he_normal", {"nonlinearity": "silu"}),
        (nn.Tanh, "xavier_uniform", {"gain": 5 / 3}),
        (nn.Sigmoid, "xavier_uniform", {"gain": 1.0}),
        (nn.SELU, "lecun_normal", {}),
    ],
    ids=["relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid", "selu"],
)
def test_hidden_layers_follow_their_activation_and_the_output_layer_is_xavier(act, scheme, params):
    p = plan(mlp(act))
    assert p.method == "fx"
    for name in ("0.weight", "2.weight", "4.weight"):
        entry = p[name]
        assert entry.scheme == scheme, (name, entry)
        for key, value in params.items():
            assert entry.params[key] == pytest.approx(value), (name, key)
        assert entry.role == "hidden" and entry.reason
    out = p["6.weight"]
    assert (out.scheme, out.params["gain"], out.role) == ("xavier_uniform", 1.0, "output")
    assert all(p[f"{i}.bias"].scheme == "zeros" for i in (0, 2, 4, 6))


def test_gelu_gain_is_numeric_and_realised_in_the_weights():
    net = mlp(nn.GELU, depth=1, width=512, inp=512)
    initialize(net, seed=0)
    expected = initlab.gain("gelu") ** 2 / 512  # He: Var = g^2 / fan_in
    measured = net[0].weight.var().item()
    # 262144 draws: the relative sd of a variance estimate is sqrt(2/n) = 0.3%; allow 3%.
    assert measured == pytest.approx(expected, rel=0.03)
    assert 1.3 < initlab.gain("gelu") < 1.8  # numeric, not torch's missing value


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        x = F.leaky_relu(self.a(x), 0.1)
        x = torch.tanh(self.b(x))
        x = self.c(x).relu()
        return self.d(F.dropout(x, 0.1, self.training))


def test_functional_activations_are_read_from_the_trace():
    p = plan(Functional())
    assert p.method == "fx"
    assert p["a.weight"].params == {"a": 0.1, "mode": "fan_in", "nonlinearity": "leaky_relu"}
    assert "F.leaky_relu" in p["a.weight"].reason
    assert p["b.weight"].scheme == "xavier_uniform" and "torch.tanh" in p["b.weight"].reason
    assert p["c.weight"].params["nonlinearity"] == "relu" and "Tensor.relu()" in p["c.weight"].reason
    assert p["d.weight"].role == "output"  # dropout is transparent


def test_cnn_conv_layers_get_he_fan_in_and_the_head_xavier():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    p = plan(net)
    assert p["0.weight"].params == {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"}
    assert p["3.weight"].scheme == "he_normal" and "BatchNorm2d '4'" in p["3.weight"].reason
    assert (p["4.weight"].scheme, p["4.bias"].scheme) == ("ones", "zeros")
    assert p["8.weight"].role == "output"


@pytest.mark.parametrize("act, name, bounds", [(nn.Tanh, "tanh", (1.0, 5 / 3)), (nn.GELU, "gelu", (1.2, 2.0))])
def test_deep_plain_chain_gets_orthogonal_at_the_depth_critical_gain(act, name, bounds):
    depth = DEEP_PLAIN_MIN_DEPTH + 4
    p = plan(mlp(act, depth=depth, width=32, inp=32))
    sigma = initlab.policy.depth_critical_gain(name, None, depth)
    # tanh: between the q -> 0 critical point (1) and torch's chaotic gain (5/3).
    assert bounds[0] < sigma < bounds[1]
    hidden = [e for e in p if e.role == "hidden"]
    assert len(hidden) == depth
    assert all(e.scheme == "orthogonal" and e.params["gain"] == pytest.approx(sigma) for e in hidden)
    # Shallow, the same activation keeps Xavier / He; deep ReLU (homogeneous) keeps He.
    assert plan(mlp(act, depth=3))["0.weight"].scheme in ("xavier_uniform", "he_normal")
    assert plan(mlp(nn.ReLU, depth=depth, width=128))["0.weight"].scheme == "he_normal"  # 5 * 12 / 128 < 1


def test_a_normalization_layer_makes_a_deep_chain_not_plain():
    layers: list[nn.Module] = []
    for _ in range(DEEP_PLAIN_MIN_DEPTH + 1):
        layers += [nn.Linear(16, 16), nn.LayerNorm(16), nn.Tanh()]
    p = plan(nn.Sequential(*layers, nn.Linear(16, 2)))
    assert p["0.weight"].scheme == "xavier_uniform"


def _gradient_log_ratio(policy) -> float:
    """log Var[grad at hidden layer 1] / Var[grad at the last hidden layer], depth-12 tanh MLP."""
    depth, width = 12, 256
    net = mlp(nn.Tanh, depth=depth, width=width, inp=width, out=width)
    initialize(net, policy, seed=0)
    x = torch.randn(512, width, generator=torch.Generator().manual_seed(1))
    outs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outs.append(output)

    for layer in [m for m in net if isinstance(m, nn.Linear)][:-1]:
        layer.register_forward_hook(keep)
    y = net(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(2)))
    return math.log(float(outs[0].grad.var() / outs[-1].grad.var()))


def test_depth_critical_gain_keeps_the_gradient_variance_over_depth():
    # Mean field says 0 (measured: 0.005); finite width (256) and one batch leave some noise.
    assert abs(_gradient_log_ratio("auto")) < 0.3
    # For contrast, Xavier at torch's tanh gain (5/3) lets the gradient grow over depth (measured: 1.5).
    xavier = {"*.weight": {"name": "xavier_uniform", "params": {"gain": 5 / 3}}}
    assert _gradient_log_ratio(xavier) > 1.0


# --- residual, recurrent, attention, embeddings ---------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        BasicBlock(8, 8),
        BasicBlock(8, 16, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_resnet_basic_block_zeroes_the_last_batchnorm_scale_only():
    p = plan(resnet())
    for block in ("3", "4"):
        assert p[f"{block}.bn2.weight"].scheme == "zeros" and "Goyal" in p[f"{block}.bn2.weight"].reason
        assert p[f"{block}.bn1.weight"].scheme == "ones"
        assert p[f"{block}.conv2.weight"].scheme == "he_normal"
    assert p["4.shortcut.1.weight"].scheme == "ones"  # the projection shortcut is not a branch end
    assert p["4.shortcut.0.weight"].scheme == "he_normal"


def test_resnet_block_is_the_identity_after_initialize():
    net = resnet()
    initialize(net, seed=0)
    block = net[3].eval()
    x = torch.randn(4, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(block(x), F.relu(x))


class ResidualMLP(nn.Module):
    def __init__(self, width: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Linear(8, width)
        self.fc1 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        x = self.stem(x)
        for a, b in zip(self.fc1, self.fc2):
            x = x + 0.5 * b(F.gelu(a(x)))  # a scaled branch is still a branch
        return self.head(x)


def test_residual_mlp_zeroes_the_last_layer_of_each_branch():
    p = plan(ResidualMLP())
    for i in range(3):
        assert p[f"fc2.{i}.weight"].scheme == "zeros" and p[f"fc2.{i}.weight"].role == "residual_last"
        # no normalization: Fixup's depth scaling, L = 3 branches of m = 2 layers -> Var x 3^-1
        entry = p[f"fc1.{i}.weight"]
        assert entry.scheme == "variance_scaling" and "gelu" in entry.reason and "Fixup" in entry.reason
        assert entry.params["scale"] == pytest.approx(initlab.gain("gelu") ** 2 / 3, rel=1e-9)
    assert p["head.weight"].role == "output"


def test_builtin_residual_models_start_as_identity_blocks():
    models = pytest.importorskip("initlab.models")
    net = models.resmlp(16, 4, width=8, depth=2, activation="relu", norm="layer")
    p = plan(net)
    assert p.method == "fx"
    assert [p[f"block{i}.fc2.weight"].scheme for i in (1, 2)] == ["zeros", "zeros"]
    assert p["block1.fc1.weight"].scheme == "he_normal"


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(40, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.gru = nn.GRU(16, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, tokens):
        h, _ = self.lstm(self.emb(tokens))
        h, _ = self.gru(h)
        return self.fc(h[:, -1])


def test_lstm_and_gru_get_per_gate_orthogonal_recurrence_and_forget_bias_one():
    net = Recurrent()
    p = plan(net)
    assert p["lstm.weight_hh_l1"].scheme == "orthogonal" and p["lstm.weight_hh_l1"].chunks == 4
    assert p["lstm.weight_ih_l0"].scheme == "xavier_uniform" and p["lstm.weight_ih_l0"].chunks == 4
    assert p["gru.weight_hh_l0_reverse"].chunks == 3
    initialize(net, seed=3)
    hidden = 16
    for layer in (0, 1):
        w = getattr(net.lstm, f"weight_hh_l{layer}")
        for gate in range(4):
            block = w[gate * hidden : (gate + 1) * hidden]
            assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)
        bias = getattr(net.lstm, f"bias_ih_l{layer}")
        assert torch.equal(bias[hidden : 2 * hidden], torch.ones(hidden))
        assert not bias[:hidden].any() and not bias[2 * hidden :].any()
        assert not getattr(net.lstm, f"bias_hh_l{layer}").any()
    # The gates are drawn separately: no two gate blocks are equal.
    w = net.gru.weight_hh_l0
    assert not torch.equal(w[:12], w[12:24])


def test_embedding_is_unit_normal_with_a_zero_padding_row():
    net = Recurrent()
    p = plan(net)
    assert p["emb.weight"].scheme == "normal" and p["emb.weight"].blocks[0].start == 0
    big = nn.Sequential(nn.Embedding(2000, 64, padding_idx=3))
    initialize(big, seed=0)
    w = big[0].weight
    assert not w[3].any()
    assert w.var().item() == pytest.approx(1.0, abs=0.03)  # 128k draws


def test_transformer_encoder_attention_and_feedforward_rules():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, activation="gelu")
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    p = plan(enc)
    assert p.method in ("hooks", "modules") and any("torch.fx" in n for n in p.notes)
    assert p["layers.0.self_attn.in_proj_weight"].chunks == 3
    assert p["layers.0.self_attn.out_proj.weight"].scheme == "xavier_uniform"
    assert p["layers.1.linear1.weight"].params["nonlinearity"] == "gelu"
    assert p["layers.0.norm1.weight"].scheme == "ones"


class PreNormBlock(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, 4)

    def forward(self, x):
        h = self.ln(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return self.head(x.mean(1))


def test_attention_ending_a_traced_residual_branch_starts_with_a_zero_output_projection():
    p = plan(PreNormBlock())
    assert p.method == "fx"
    assert p["attn.out_proj.weight"].scheme == "zeros"
    assert p["attn.in_proj_weight"].scheme == "xavier_uniform"


class OwnReset(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((4,), 0.5))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.scale, 0.5)

    def forward(self, x):
        return x * self.scale


def test_a_module_with_its_own_reset_parameters_and_no_rule_is_kept():
    net = nn.Sequential(nn.Linear(4, 4), OwnReset(), nn.PReLU(), nn.Linear(4, 2))
    p = plan(net)
    assert p["1.scale"].keeps and "reset_parameters" in p["1.scale"].reason
    assert p["2.weight"].keeps
    before = net[1].scale.detach().clone()
    initialize(net, seed=0)
    assert torch.equal(net[1].scale, before)


# --- policies and overrides -------------------------------------------------------------------------


def test_a_scheme_name_policy_fills_every_weight_and_zeroes_biases():
    net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))
    p = plan(net, "kaiming")
    assert p.policy == "he_normal"
    assert (p["0.weight"].scheme, p["3.weight"].scheme) == ("he_normal", "he_normal")
    assert p["0.bias"].scheme == "zeros" and p["1.weight"].scheme == "ones"


def test_overrides_exact_name_beats_pattern_and_the_rest_stays_auto():
    net = mlp(nn.ReLU)
    policy = {
        "*.weight": "orthogonal",
        "0.weight": {"name": "xavier_normal", "params": {"gain": 2.0}},
        "2.bias": initlab.get_scheme("constant", val=0.1),
    }
    p = plan(net, policy)
    assert (p["0.weight"].scheme, p["0.weight"].params) == ("xavier_normal", {"gain": 2.0})
    assert p["2.weight"].scheme == "orthogonal" and p["2.weight"].source == "override"
    assert p["2.bias"].params == {"val": 0.1}
    assert p["0.bias"].scheme == "zeros" and p["0.bias"].source == "auto"


def test_patterns_apply_in_dict_order():
    net = mlp(nn.ReLU)
    p = plan(net, {"4.*": "keep", "*.weight": "orthogonal"})
    assert p["4.weight"].keeps and p["2.weight"].scheme == "orthogonal"
    p = plan(net, {"*.weight": "orthogonal", "4.*": "keep"})
    assert p["4.weight"].scheme == "orthogonal" and p["4.bias"].keeps


def test_an_unknown_scheme_names_it_and_the_nearest():
    with pytest.raises(ValueError, match=r"he_norml.*he_normal"):
        plan(mlp(nn.ReLU), {"*.weight": "he_norml"})
    with pytest.raises(ValueError, match=r"xavir.*xavier"):
        plan(mlp(nn.ReLU), "xavir")


def test_a_pattern_matching_nothing_warns_with_its_name():
    with pytest.warns(UserWarning, match=r"'encoder\.\*' matches no parameter"):
        plan(mlp(nn.ReLU), {"encoder.*": "zeros"})


def test_a_scheme_that_cannot_fill_an_exact_parameter_is_an_error():
    with pytest.raises(ValueError, match=r"orthogonal.*1-D|bias"):
        plan(mlp(nn.ReLU), {"0.bias": "orthogonal"})


def test_a_model_without_parameters_gives_an_empty_plan_and_a_warning():
    with pytest.warns(UserWarning, match="no parameters"):
        p = plan(nn.Sequential(nn.ReLU(), nn.Flatten()))
    assert len(p) == 0 and isinstance(p, Plan)


def test_bad_policy_and_model_types_are_user_errors():
    with pytest.raises(ValueError, match="policy must be"):
        plan(mlp(nn.ReLU), 3)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        plan("not a model")


# --- the plan as data -------------------------------------------------------------------------------


def test_plan_touches_no_weight_and_the_global_rng():
    net = resnet()
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.get_rng_state()
    plan(net)
    plan(enc, example_input=torch.zeros(3, 2, 8))  # hooks: runs the forward, dropout layers included
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_plan_json_round_trip_is_exact_and_applies_identically():
    net = Recurrent()
    p = plan(net, {"fc.weight": "orthogonal"})
    text = json.dumps(p.to_dict())
    back = Plan.from_dict(json.loads(text))
    assert back == p and Plan.from_dict(text) == p
    a, b = Recurrent(), Recurrent()
    initialize(a, p, seed=5)
    initialize(b, back, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_plan_prints_as_a_table_with_reasons():
    text = str(plan(mlp(nn.ReLU)))
    lines = text.splitlines()
    assert lines[0].startswith("Plan: policy=auto, introspection=fx")
    assert "param" in lines[1] and "reason" in lines[1]
    assert any("0.weight" in ln and "he_normal" in ln and "He et al. 2015" in ln for ln in lines)
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(plan(mlp(nn.ReLU)))
    assert "he_normal" in console.export_text()


def test_a_plan_for_another_model_is_rejected():
    p = plan(mlp(nn.ReLU, width=32))
    with pytest.raises(ValueError, match="shape"):
        plan(mlp(nn.ReLU, width=16), p)
    with pytest.raises(ValueError, match="does not have"):
        plan(
            nn.Sequential(nn.Linear(16, 32)),
            p.with_(entries=p.entries + (p.entries[0].__class__("x.weight", "zeros"),)),
        )


def test_a_tampered_plan_dict_is_validated():
    d = plan(mlp(nn.ReLU)).to_dict()
    d["entries"][0]["scheme"] = "he_norml"
    with pytest.raises(ValueError, match="he_normal"):
        Plan.from_dict(d)
    d["entries"][0]["scheme"] = "he_normal"
    d["entries"][0]["params"] = {"mode": "sideways"}
    with pytest.raises(ValueError, match="mode"):
        Plan.from_dict(d)


def test_no_warnings_on_an_ordinary_model():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan(resnet())
