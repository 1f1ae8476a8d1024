"""initlab.diagnose: measurements, flags on the textbook cases, theory alongside, Jacobian spectra."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from initlab.diagnose import Diagnosis, Thresholds, diagnose, duplicate_rows, jacobian_singular_values
from initlab.diagnose import jacobian as jacobian_module
from initlab.errors import UserError
from initlab.schemes import init_
from initlab.seeding import derive_generator


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _init(model: nn.Module, scheme: str, seed: int = 0, bias: str = "zeros", **params) -> nn.Module:
    """Weights from ``scheme``, biases from ``bias``, each from a generator named after it."""
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() >= 2:
            init_(p, scheme, generator=derive_generator(seed, name), **params)
        elif name.endswith("bias"):
            init_(p, bias, generator=derive_generator(seed, name))
    return model


def _mlp(depth: int, width: int, act: type[nn.Module] = nn.ReLU, in_features: int = 64, out: int = 10) -> nn.Sequential:
    """``depth`` Linear layers in all: depth-1 hidden ones, each followed by ``act``, then the output."""
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth - 1):
        layers += [nn.Linear(fan_in, width), act()]
        fan_in = width
    layers.append(nn.Linear(fan_in, out))
    return nn.Sequential(*layers)


def _x(batch: int = 64, features: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, features, generator=_gen(seed))


def _kinds(d: Diagnosis) -> set[str]:
    return {f.kind for f in d.flags}


# --- the textbook cases -------------------------------------------------------------------


def test_xavier_on_a_30_layer_relu_mlp_vanishes_and_he_does_not():
    xavier = diagnose(_init(_mlp(30, 256), "xavier_uniform"), _x())
    assert _kinds(xavier) == {"vanishing"}
    forward, backward = sorted(xavier.flagged("vanishing"), key=lambda f: f.layer)
    assert {forward.layer, backward.layer} == {"58", "0"}  # the last layer (forward), the first (backward)
    assert xavier.layers[-1].out_var / xavier.layers[0].out_var < 1e-6  # ~0.5 per layer over 29 layers
    he = diagnose(_init(_mlp(30, 256), "he_normal"), _x())
    assert he.flags == []
    assert 0.1 < he.layers[-1].out_var / he.layers[0].out_var < 10


def test_zero_init_is_symmetric_and_dead():
    d = diagnose(_init(_mlp(5, 32), "zeros"), _x())
    assert {"symmetric", "dead", "vanishing"} <= _kinds(d)
    assert all(s.symmetric_frac == 1.0 for s in d.layers)
    assert [f.layer for f in d.flagged("symmetric")] == [s.name for s in d.layers]
    assert all(s.dead_frac == 1.0 for s in d.layers[:-1])
    assert d.layers[0].grad_var == 0.0  # zero weights above block every gradient below the output


def test_constant_init_is_symmetric_and_outside_the_theory():
    d = diagnose(_init(_mlp(4, 32, nn.Tanh), "constant", val=0.05), _x())
    assert [f.layer for f in d.flagged("symmetric")] == ["0", "2", "4", "6"]
    assert "dead" not in _kinds(d)
    assert d.predicted is None and "not zero-mean" in d.predicted_note


def test_tanh_deep_in_the_chaotic_phase_explodes_backward():
    # σ_w² = 6.25, σ_b² = 0: χ1 ≈ 1.6, gradients grow ~1e6 over 30 layers; forward q stays bounded
    model = _init(_mlp(30, 256, nn.Tanh), "variance_scaling", scale=6.25, distribution="normal")
    d = diagnose(model, _x())
    exploding = d.flagged("exploding")
    assert [f.layer for f in exploding] == ["0"]
    assert "backward" in exploding[0].message and exploding[0].value > 1e3
    assert not d.flagged("vanishing")


@pytest.mark.parametrize(
    ("label", "act", "scheme", "params"),
    [
        ("he relu", nn.ReLU, "he_normal", {}),
        ("lecun tanh", nn.Tanh, "lecun_normal", {}),
        ("orthogonal tanh", nn.Tanh, "orthogonal", {}),
        ("he gelu", nn.GELU, "he_normal", {}),
    ],
)
def test_healthy_nets_raise_no_flag(label, act, scheme, params):
    d = diagnose(_init(_mlp(12, 128, act), scheme, **params), _x())
    assert d.flags == [], label


def test_pytorch_default_init_vanishes_on_a_deep_relu_mlp():
    # U(±1/sqrt(fan_in)) has σ_w² = 1/3: q shrinks by 1/6 per ReLU layer
    d = diagnose(_init(_mlp(12, 128), "torch_default"), _x())
    assert _kinds(d) == {"vanishing"}
    assert d.layers[-1].out_var / d.layers[0].out_var < 1e-6


def test_thresholds_are_honoured():
    model = _init(_mlp(12, 64, nn.Tanh), "lecun_normal")  # q decays ~1/l: a factor ~0.1 over 12 layers
    ratio = diagnose(model, _x()).layers[-1].out_var / diagnose(model, _x()).layers[0].out_var
    assert 1e-3 < ratio < 0.5
    strict = diagnose(model, _x(), thresholds=Thresholds(vanishing=ratio * 1.01))
    assert [f.kind for f in strict.flags] == ["vanishing"]
    with pytest.raises(UserError, match="thresholds.dead=1.5"):
        Thresholds(dead=1.5)


# --- measurements, defined exactly --------------------------------------------------------


def test_measurements_follow_their_definitions():
    layer = nn.Linear(3, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]))
        layer.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -100.0]))  # unit 3 is dead under ReLU
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight.fill_(0.5)
        model[2].bias.zero_()
    x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = diagnose(model, x, targets)
    first = d.layers[0]
    y = x @ layer.weight.detach().T + layer.bias.detach()
    assert first.out_mean == pytest.approx(float(y.mean()), rel=1e-6)
    assert first.out_var == pytest.approx(float(y.pow(2).mean()), rel=1e-6)
    assert first.dead_frac == 0.25 and first.activation == "relu" and first.saturated_frac is None
    assert first.units == 4 and first.fan_in == 3
    assert first.weight_norm == pytest.approx(2.0)
    assert first.sigma_w2 == pytest.approx(3 * 4 / 12)
    # squared error ½(y - t)², summed: dℓ/dy_out = y_out - t
    out = model(x).detach()
    assert d.loss == "squared_error"
    assert d.layers[1].grad_var == pytest.approx(float((out - targets).pow(2).mean()), rel=1e-6)
    assert d.layers[1].grad_sq_norm == pytest.approx(float((out - targets).pow(2).sum()) / 2, rel=1e-6)
    # symmetric: the two identical output rows (all 0.5) are twins
    assert d.layers[1].symmetric_frac == 1.0
    # units 2 and 3 share incoming weights but not the bias: no twins there
    assert first.symmetric_frac == 0.0


def test_saturation_is_measured_on_the_following_activation():
    model = nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    _init(model, "normal", std=0.01)
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([10.0, -10.0, 0.0, 0.0]))  # 2 of 4 tanh units pinned at ±1
        model[2].bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))  # 1 of 4 sigmoid units pinned at 1
    d = diagnose(model, _x(16, 8))
    assert d.layers[0].activation == "tanh" and d.layers[0].saturated_frac == 0.5
    assert d.layers[1].activation == "sigmoid" and d.layers[1].saturated_frac == 0.25
    assert d.layers[2].activation is None and d.layers[2].saturated_frac is None


def test_twin_units_and_cloned_layers_are_found():
    model = _init(_mlp(4, 16), "he_normal")
    with torch.no_grad():
        model[2].weight[5].copy_(model[2].weight[3])  # one copied unit (biases are both 0)
    model[4] = copy.deepcopy(model[2])  # a cloned layer
    d = diagnose(model, _x())
    assert d.layers[1].symmetric_frac == pytest.approx(2 / 16)
    flags = {f.layer: f.message for f in d.flagged("symmetric")}
    assert set(flags) == {"2", "4"}
    assert "same weights as 2" in flags["4"]


def test_duplicate_rows_tolerance_and_groups():
    gen = _gen(3)
    m = torch.randn(50, 30, generator=gen)
    m[7] = m[3]
    m[11] = m[3] * (1 + 1e-8)  # within 1e-6 of the largest entry
    m[20] = m[3] + 1e-3  # not a twin
    mask = duplicate_rows(m)
    assert mask.nonzero().flatten().tolist() == [3, 7, 11]
    assert duplicate_rows(torch.zeros(5, 4)).all()
    assert duplicate_rows(m, skip=torch.arange(50) == 7).nonzero().flatten().tolist() == [3, 11]


def test_backward_pass_leaves_the_model_and_the_global_rng_alone():
    model = _init(_mlp(4, 32), "he_normal")
    model.add_module("drop", nn.Dropout(0.5))
    model.train()
    state = torch.get_rng_state()
    d = diagnose(model, _x())
    assert torch.equal(state, torch.get_rng_state())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and all(m.training for m in model.modules())
    assert d.mode == "eval"


def test_train_mode_restores_batchnorm_statistics():
    model = _init(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4)), "he_normal")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = diagnose(model, _x() * 3 + 1, train=True)
    assert d.mode == "train"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_same_generator_same_result_and_the_projection_comes_from_it():
    model = _init(_mlp(6, 64), "he_normal")
    a = diagnose(model, _x(), generator=_gen(5)).to_records()
    b = diagnose(model, _x(), generator=_gen(5)).to_records()
    c = diagnose(model, _x(), generator=_gen(6)).to_records()
    assert a == b
    assert a[0]["grad_var"] != c[0]["grad_var"]


def test_inplace_activations_and_normalization_between_layer_and_activation():
    plain = _init(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 8)), "he_normal")
    inplace = copy.deepcopy(plain)
    inplace[2] = nn.ReLU(inplace=True)
    a, b = diagnose(plain, _x()), diagnose(inplace, _x())
    assert a.layers[0].activation == b.layers[0].activation == "relu"
    assert a.to_records() == b.to_records()
    assert a.layers[0].grad_var > 0


def test_functional_activations_are_invisible_and_shared_modules_are_named_per_call():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.hidden, self.out = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 4)

        def forward(self, x):
            h = torch.relu(self.inp(x))
            h = torch.relu(self.hidden(h))
            return self.out(torch.relu(self.hidden(h)))

    d = diagnose(_init(Net(), "he_normal"), _x())
    assert [s.name for s in d.layers] == ["inp", "hidden", "hidden#2", "out"]
    assert all(s.activation is None for s in d.layers)
    assert d.predicted is None and "more than once" in d.predicted_note


def test_conv_embedding_and_transposed_layers_are_measured():
    conv = _init(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=2),
            nn.Tanh(),
            nn.ConvTranspose2d(8, 4, 2, stride=2),
            nn.Flatten(),
            nn.Linear(4 * 16 * 16, 5),
        ),
        "zeros",
    )
    d = diagnose(conv, torch.randn(4, 3, 8, 8, generator=_gen(0)))
    assert [s.kind for s in d.layers] == ["conv", "conv", "conv_transpose", "linear"]
    assert [s.units for s in d.layers] == [8, 8, 4, 5]
    assert all(s.symmetric_frac == 1.0 for s in d.layers)
    emb = _init(nn.Sequential(nn.Embedding(50, 16), nn.Flatten(), nn.Linear(16 * 6, 3)), "he_normal")
    d = diagnose(emb, torch.randint(0, 50, (8, 6), generator=_gen(0)))
    assert [s.kind for s in d.layers] == ["embedding", "linear"]
    assert d.layers[0].units == 16 and d.layers[0].symmetric_frac == 0.0


# --- theory alongside ---------------------------------------------------------------------


def test_prediction_matches_a_wide_chain():
    # tanh at σ_w² = 2, σ_b² = 0.05, width 1000, batch 128, 6 layers: forward within 5%,
    # backward within 10% (gradient independence is approximate at finite width)
    model = _init(
        _mlp(6, 1000, nn.Tanh, in_features=200), "variance_scaling", bias="normal", scale=2.0, distribution="normal"
    )
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                init_(m.bias, "normal", std=math.sqrt(0.05), generator=derive_generator(0, "b", m.out_features))
    d = diagnose(model, _x(128, 200))
    assert d.predicted is not None and d.predicted_note == ""
    measured = [s.out_var for s in d.layers]
    np.testing.assert_allclose(measured, [p.out_var for p in d.predicted], rtol=0.05)
    np.testing.assert_allclose([s.grad_var for s in d.layers], [p.grad_var for p in d.predicted], rtol=0.10)
    assert d.predicted[-1].grad_var == d.layers[-1].grad_var  # anchored at the output


def test_prediction_is_refused_for_non_chains():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 4)

        def forward(self, x):
            return self.b(x + torch.relu(self.a(x)))

    d = diagnose(_init(Residual(), "he_normal"), _x())
    assert d.predicted is None and "not a plain chain" in d.predicted_note
    pooled = _init(nn.Sequential(nn.Conv1d(1, 4, 3), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4 * 31, 2)), "he_normal")
    d = diagnose(pooled, torch.randn(4, 1, 64, generator=_gen(0)))
    assert d.predicted is None and "MaxPool1d" in d.predicted_note


# --- Jacobian -----------------------------------------------------------------------------


def _deep_linear(depth: int, width: int, scheme: str) -> nn.Sequential:
    return _init(nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(depth)]), scheme)


def test_orthogonal_deep_linear_net_is_an_isometry_and_gaussian_is_not():
    x = _x(4, 64)
    ortho = diagnose(_deep_linear(16, 64, "orthogonal"), x, jacobian=True)
    gauss = diagnose(_deep_linear(16, 64, "xavier_normal"), x, jacobian=True)
    assert ortho.jacobian_method == gauss.jacobian_method == "exact"
    assert ortho.jacobian_singular_values.shape == (4, 64)
    np.testing.assert_allclose(ortho.jacobian_singular_values.numpy(), 1.0, atol=1e-4)
    sv = gauss.jacobian_singular_values
    assert float(sv.max() / sv.min()) > 1e3  # the spectrum spreads with depth (Saxe et al. 2014)
    assert float(sv.pow(2).mean()) == pytest.approx(1.0, rel=0.5)  # yet σ_w² = 1 keeps the mean


def _reference_svdvals(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    jac = [torch.autograd.functional.jacobian(model, x[i : i + 1]).reshape(-1, x[i].numel()) for i in range(len(x))]
    return torch.stack([torch.linalg.svdvals(j) for j in jac])


def test_exact_jacobian_matches_autograd_both_ways_round():
    wide_out = _init(nn.Sequential(nn.Linear(10, 40), nn.Tanh(), nn.Linear(40, 30)), "xavier_normal")
    wide_in = _init(nn.Sequential(nn.Linear(30, 40), nn.GELU(), nn.Linear(40, 10)), "xavier_normal")
    for model, features in ((wide_out, 10), (wide_in, 30)):
        x = _x(3, features)
        sv, method = jacobian_singular_values(model, x)
        assert method == "exact"
        torch.testing.assert_close(sv, _reference_svdvals(model, x)[:, : sv.shape[1]], atol=1e-5, rtol=1e-5)


def test_randomized_jacobian_estimates_the_top_singular_values(monkeypatch):
    model = _init(nn.Sequential(nn.Linear(64, 200), nn.Tanh(), nn.Linear(200, 100)), "xavier_normal")
    x = _x(3, 64)
    monkeypatch.setattr(jacobian_module, "EXACT_BUDGET", 10)
    sv, method = jacobian_singular_values(model, x, rank=8, generator=_gen(0))
    assert method == "randomized" and sv.shape == (3, 8)
    ref = _reference_svdvals(model, x)[:, :8]
    torch.testing.assert_close(sv, ref, rtol=0.03, atol=0.0)  # 2 power iterations, 10 extra probes


# --- results, plot, errors ----------------------------------------------------------------


def test_records_and_json_round_trip(tmp_path):
    d = diagnose(_init(_mlp(3, 16), "he_normal"), _x(), jacobian=True)
    records = d.to_records()
    assert [r["name"] for r in records] == ["0", "2", "4"]
    assert {
        "kind",
        "out_mean",
        "out_var",
        "grad_var",
        "dead_frac",
        "saturated_frac",
        "weight_norm",
        "pred_out_var",
        "pred_grad_var",
    } <= set(records[0])
    payload = json.loads(json.dumps(d.to_dict()))
    assert len(payload["jacobian"]["singular_values"]) == 16  # jacobian_samples of the 64 inputs
    assert len(payload["jacobian"]["singular_values"][0]) == 10  # min(d_in, d_out)
    assert payload["flags"] == []
    text = d.summary()
    assert "flags: none" in text and "Jacobian (exact" in text


def test_plot_writes_an_image_and_matplotlib_is_imported_lazily(tmp_path):
    code = "import sys, initlab.diagnose, initlab.theory; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    d = diagnose(_init(_mlp(4, 16), "zeros"), _x(8), jacobian=True)
    path = d.plot(tmp_path / "sub" / "sp.png", title="zeros")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_a_clear_user_error():
    with pytest.raises(UserError, match="has no weighted layer"):
        diagnose(nn.Sequential(nn.ReLU(), nn.Tanh()), _x())
    with pytest.raises(UserError, match=r"failed on inputs of shape \(64, 64\)"):
        diagnose(_mlp(3, 16, in_features=10), _x())
    with pytest.raises(UserError, match="batch size 1"):
        diagnose(_mlp(3, 16), _x(1))
    with pytest.raises(UserError, match="must be a torch.nn.Module"):
        diagnose(lambda x: x, _x())
    with pytest.raises(UserError, match=r"integer targets of shape \(3,\)"):
        diagnose(_mlp(3, 16), _x(), torch.zeros(3, dtype=torch.long))
    with pytest.raises(UserError, match=r"allowed: 0\.\.9"):
        diagnose(_mlp(3, 16), _x(), torch.full((64,), 12, dtype=torch.long))
    with pytest.raises(UserError, match="floating-point inputs"):
        diagnose(
            nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(8, 2)),
            torch.zeros(3, 2, dtype=torch.long),
            jacobian=True,
        )


def test_initlab_diagnose_is_callable_however_it_was_imported():
    import initlab
    import initlab.diagnose as package

    model, x = _init(_mlp(2, 8), "he_normal"), _x(4)
    assert isinstance(initlab.diagnose(model, x), Diagnosis)
    assert isinstance(package(model, x), Diagnosis)


def test_cross_entropy_targets():
    model = _init(_mlp(3, 16), "he_normal")
    d = diagnose(model, _x(), torch.arange(64) % 10)
    assert d.loss == "cross_entropy"
    # dℓ/dlogits = softmax - onehot: per sample, its squared norm is in (0, 2)
    assert 0 < d.layers[-1].grad_sq_norm < 2
