"""The ensemble engine: backends agree, members are independent, runs reproduce and resume."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.engine import (
    Member,
    TrainConfig,
    initialize_member,
    load_member,
    state_from_bytes,
    state_to_bytes,
    train,
)
from initlab.engine.optim import StackedSGD
from initlab.seeding import derive_generator, param_generator

FEATURES, CLASSES = 12, 3


@dataclass(frozen=True)
class TinyData:
    """A learnable 3-class problem: labels from a fixed random linear teacher, plus noise."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = CLASSES


def tiny_data(n_train: int = 200, n_test: int = 60, shape: tuple[int, ...] = (FEATURES,)) -> TinyData:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n_train + n_test, *shape, generator=g)
    teacher = torch.randn(math.prod(shape), CLASSES, generator=g)
    y = (x.reshape(len(x), -1) @ teacher + 0.5 * torch.randn(len(x), CLASSES, generator=g)).argmax(dim=1)
    return TinyData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def mlp_factory(activation: type[nn.Module] = nn.ReLU, width: int = 10):
    def build() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(FEATURES, width),
            activation(),
            nn.Linear(width, width),
            activation(),
            nn.Linear(width, CLASSES),
        )

    return build


def conv_bn_factory() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(30, CLASSES))


def dropout_factory() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, CLASSES))


MEMBERS = [Member("he_normal", 0), Member("xavier_uniform", 1), Member("orthogonal", 0)]
SGD = TrainConfig(epochs=2, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3)
ADAM = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=0.01, weight_decay=1e-3)


def same(a: list, b: list) -> bool:
    """Equal element by element, NaN equal to NaN (a diverged member records NaN losses)."""
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


def metrics(result):
    """Every recorded number except wall times, one flat list per member."""
    return [
        [v for r in m.records for v in (r.epoch, r.step, r.train_loss, r.train_acc, r.test_loss, r.test_acc)]
        for m in result.members
    ]


def assert_params_close(a, b, atol, rtol=0.0):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=rtol, msg=f"parameter {name}")


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- backends ------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [SGD, ADAM], ids=["sgd", "adam"])
def test_mlp_vmap_and_loop_backends_agree(config):
    data = tiny_data()
    results = {b: train(mlp_factory(), MEMBERS, data, config, backend=b) for b in ("mlp", "vmap", "loop")}
    assert [r.backend for r in results.values()] == ["mlp", "vmap", "loop"]
    for b in ("vmap", "loop"):
        # float32, 14 steps: differences come only from summation order (~1e-7 per op).
        assert_params_close(results["mlp"].state["params"], results[b].state["params"], atol=1e-5)
        for ours, theirs in zip(metrics(results["mlp"]), metrics(results[b])):
            assert ours == pytest.approx(theirs, abs=1e-5)


@pytest.mark.parametrize(
    "factory",
    [
        mlp_factory(nn.GELU),
        mlp_factory(lambda: nn.LeakyReLU(0.1, inplace=True)),
        # Activations in a row (and one before the first Linear): none may overwrite what another saved.
        lambda: nn.Sequential(
            nn.Tanh(),
            nn.Linear(FEATURES, 10),
            nn.Tanh(),
            nn.Sigmoid(),
            nn.ReLU(),
            nn.Identity(),
            nn.Linear(10, CLASSES, bias=False),
        ),
    ],
    ids=["gelu", "leaky_relu_inplace", "stacked_activations"],
)
def test_mlp_backend_with_other_activations_agrees_with_vmap(factory):
    data = tiny_data()
    x_before = data.x_train.clone()
    a, b = (train(factory, MEMBERS, data, SGD, backend=k) for k in ("mlp", "vmap"))
    assert_params_close(a.state["params"], b.state["params"], atol=1e-5)
    assert metrics(a)[0] == pytest.approx(metrics(b)[0], abs=1e-5)
    assert torch.equal(data.x_train, x_before)


def test_vmap_handles_batchnorm_like_the_loop():
    data = tiny_data(shape=(1, FEATURES))
    a = train(conv_bn_factory, MEMBERS, data, SGD, backend="vmap")
    b = train(conv_bn_factory, MEMBERS, data, SGD, backend="loop")
    assert a.backend == "vmap"
    assert_params_close(a.state["params"], b.state["params"], atol=1e-5)
    assert_params_close(a.state["buffers"], b.state["buffers"], atol=1e-5)
    assert int(a.state["buffers"]["1.num_batches_tracked"][0]) == 2 * math.ceil(200 / 32)


def test_auto_picks_the_loop_for_random_modules_and_stays_reproducible():
    data = tiny_data()
    first = train(dropout_factory, MEMBERS, data, SGD)
    again = train(dropout_factory, MEMBERS, data, SGD)
    assert first.backend == "loop"
    assert_params_equal(first.state["params"], again.state["params"])
    # The dropout masks depend on (member seed, epoch, step): member 0 alone draws the same ones.
    alone = train(dropout_factory, MEMBERS[:1], data, SGD)
    assert_params_close(alone.state["params"], {n: t[:1] for n, t in first.state["params"].items()}, atol=1e-6)


class NamedMLP(nn.Sequential):
    """A Sequential subclass that only names its layers: still the fast path's chain."""


class ScaledMLP(nn.Sequential):
    """A Sequential subclass with its own forward: the fast path cannot know what it computes."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_auto_takes_the_mlp_path_only_for_sequentials_that_keep_their_forward():
    data = tiny_data()
    layers = lambda: [nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, CLASSES)]  # noqa: E731
    assert train(lambda: NamedMLP(*layers()), MEMBERS, data, SGD).backend == "mlp"
    scaled = train(lambda: ScaledMLP(*layers()), MEMBERS, data, SGD)
    plain = train(lambda: nn.Sequential(*layers()), MEMBERS, data, SGD)
    assert scaled.backend == "vmap"
    assert not torch.allclose(scaled.state["params"]["0.weight"], plain.state["params"]["0.weight"])


def test_initlab_models_mlp_takes_the_fast_path():
    models = pytest.importorskip("initlab.models")
    result = train(lambda: models.mlp(FEATURES, CLASSES, 8, 2), MEMBERS, tiny_data(), SGD)
    assert result.backend == "mlp"


def test_mlp_backend_refuses_other_models_by_name():
    with pytest.raises(ValueError, match="backend 'mlp' cannot run this model: module '0' \\(Conv1d\\)"):
        train(conv_bn_factory, MEMBERS, tiny_data(shape=(1, FEATURES)), SGD, backend="mlp")
    with pytest.raises(ValueError, match="backend must be one of auto, mlp, grouped, vmap, loop; got 'jax'"):
        train(mlp_factory(), MEMBERS, tiny_data(), SGD, backend="jax")


# --- optimizer semantics ---------------------------------------------------------------------------


def _reference_run(config: TrainConfig, member: Member, data: TinyData, optimizer_cls, **optimizer_kwargs):
    """One member trained the plain PyTorch way: same init, same data order, torch.optim."""
    model = mlp_factory()()
    initialize_member(model, member.scheme, member.seed, bias_init=config.bias_init)
    optimizer = optimizer_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **optimizer_kwargs)
    n = len(data.x_train)
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n, generator=derive_generator(member.seed, "data", epoch))
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "ops"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch_optim_sgd_bit_for_bit(monkeypatch, fused, nesterov):
    # The engine uses torch's fused SGD kernel where it exists (one pass over memory): it must
    # then equal torch.optim.SGD(fused=True); the op-by-op update equals the default (foreach=False).
    if fused and not StackedSGD.use_fused:
        pytest.skip("this torch has no fused SGD kernel")
    monkeypatch.setattr(StackedSGD, "use_fused", fused)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=1e-3)
    member = Member("he_normal", 5)
    data = tiny_data()
    ours = train(mlp_factory(), [member], data, config, backend="loop").state["params"]
    theirs = _reference_run(
        config,
        member,
        data,
        torch.optim.SGD,
        momentum=0.9,
        nesterov=nesterov,
        **({"fused": True} if fused else {"foreach": False}),
    )
    assert_params_equal({n: t[0] for n, t in ours.items()}, theirs)


def test_adam_matches_torch_optim_adam_bit_for_bit():
    member = Member("xavier_normal", 2)
    data = tiny_data()
    ours = train(mlp_factory(), [member], data, ADAM, backend="loop").state["params"]
    theirs = _reference_run(ADAM, member, data, torch.optim.Adam, betas=ADAM.betas, eps=ADAM.eps, foreach=False)
    assert_params_equal({n: t[0] for n, t in ours.items()}, theirs)


# --- members, determinism, divergence ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mlp", "vmap"])
def test_a_member_alone_equals_the_same_member_in_an_ensemble(backend):
    data = tiny_data()
    ensemble = train(mlp_factory(), MEMBERS, data, SGD, backend=backend)
    alone = train(mlp_factory(), [MEMBERS[1]], data, SGD, backend=backend)
    assert_params_close({n: t[1:2] for n, t in ensemble.state["params"].items()}, alone.state["params"], atol=1e-6)
    assert metrics(alone)[0] == pytest.approx(metrics(ensemble)[1], abs=1e-6)


def test_same_config_same_bits():
    data = tiny_data()
    a = train(mlp_factory(), MEMBERS, data, ADAM)
    b = train(mlp_factory(), MEMBERS, data, ADAM)
    assert_params_equal(a.state["params"], b.state["params"])
    assert metrics(a) == metrics(b)


def test_initialization_follows_the_documented_rules():
    member = Member(initlab.get_scheme("he_normal", mode="fan_out"), 11)
    result = train(mlp_factory(), [member], tiny_data(), TrainConfig(epochs=1, bias_init="normal"))
    model = mlp_factory()()
    initialize_member(model, member.scheme, 11, bias_init=initlab.get_scheme("normal"))
    expected = torch.empty(10, FEATURES)
    initlab.init_(expected, "he_normal", mode="fan_out", generator=param_generator(11, "1.weight"))
    assert torch.equal(model.get_parameter("1.weight"), expected)
    bias = initlab.init_(torch.empty(10), "normal", generator=param_generator(11, "1.bias"))
    assert torch.equal(model.get_parameter("1.bias"), bias)
    norm = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    initialize_member(norm, initlab.get_scheme("zeros"), 0, bias_init=initlab.get_scheme("constant", val=0.5))
    assert torch.equal(norm[1].weight, torch.ones(4)) and torch.equal(norm[1].bias, torch.full((4,), 0.5))
    assert result.members[0].label == "he_normal"


def test_a_callable_init_receives_the_model_and_seed():
    seen = []

    def init(model: nn.Module, seed: int) -> None:
        seen.append(seed)
        for p in model.parameters():
            nn.init.constant_(p, 0.01 * seed)

    result = train(mlp_factory(), [Member(init, 3)], tiny_data(), TrainConfig(epochs=1, lr=1e-9))
    assert seen == [3]
    assert result.members[0].label.endswith("init")
    # lr 1e-9 barely moves the weights: they are still the callable's 0.03.
    assert torch.allclose(result.state["params"]["1.weight"], torch.full((1, 10, FEATURES), 0.03), atol=1e-6)


def test_a_diverging_member_stops_and_the_others_equal_their_solo_runs():
    data = tiny_data()
    huge = Member(initlab.get_scheme("normal", std=1e18), 0, name="huge")  # logits overflow to inf
    members = [MEMBERS[0], huge, MEMBERS[1]]
    result = train(mlp_factory(), members, data, SGD)
    status = [(m.status, m.diverged_step) for m in result.members]
    assert status == [("ok", None), ("diverged", 1), ("ok", None)]
    params = result.state["params"]
    initial = train(mlp_factory(), [huge], data, TrainConfig(epochs=1, lr=1e-30)).state["params"]
    for name, t in params.items():
        assert torch.isfinite(t).all(), name
        assert torch.equal(t[1], initial[name][0]), name  # frozen at its initialization
    for index, member in ((0, MEMBERS[0]), (2, MEMBERS[1])):
        solo = train(mlp_factory(), [member], data, SGD).state["params"]
        assert_params_close({n: t[index : index + 1] for n, t in params.items()}, solo, atol=1e-6)
    assert all(math.isnan(r.train_loss) for r in result.members[1].records)
    assert all(math.isfinite(r.train_loss) for r in result.members[0].records)


def test_divergence_in_the_middle_of_training_freezes_the_last_finite_parameters():
    data = tiny_data()
    config = TrainConfig(epochs=3, batch_size=32, lr=5.0, momentum=0.9)  # lr far too large for std 8
    wild = Member(initlab.get_scheme("normal", std=8.0), 0)
    members = [Member("he_normal", 0), wild]
    result = train(mlp_factory(), members, data, config, backend="mlp")
    assert [(m.status, m.diverged_step) for m in result.members] == [("ok", None), ("diverged", 6)]
    params = result.state["params"]
    start = train(mlp_factory(), [wild], data, TrainConfig(epochs=1, lr=1e-30)).state["params"]
    assert all(torch.isfinite(t).all() for t in params.values())
    assert not torch.equal(params["1.weight"][1], start["1.weight"][0])  # it trained for 5 steps
    # The loop backend stops the same member at the same step with the same parameters.
    loop = train(mlp_factory(), [wild], data, config, backend="loop")
    assert (loop.members[0].status, loop.members[0].diverged_step) == ("diverged", 6)
    # Its weights reached ~1e15 before the blow-up: compare relatively (float32 eps is 1.2e-7).
    assert_params_close({n: t[1:] for n, t in params.items()}, loop.state["params"], atol=1e-5, rtol=1e-5)
    solo = train(mlp_factory(), members[:1], data, config, backend="mlp")
    # at lr 5 the healthy member's weights grow to ~50 as well: relative again, a few float32 ulps
    assert_params_close({n: t[:1] for n, t in params.items()}, solo.state["params"], atol=1e-6, rtol=1e-5)


# --- checkpoints and resume -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mlp", "loop"])
def test_resume_equals_the_uninterrupted_run(backend):
    data = tiny_data()
    config = TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=0.02)
    members = MEMBERS + [Member(initlab.get_scheme("normal", std=1e18), 4, name="huge")]
    saved: list[bytes] = []
    full = train(
        mlp_factory(), members, data, config, backend=backend, checkpoint=lambda s: saved.append(state_to_bytes(s))
    )
    assert len(saved) == 3
    state = state_from_bytes(saved[0])  # killed after epoch 1
    resumed = train(mlp_factory(), members, data, config, resume_state=state)
    assert resumed.backend == backend and resumed.resumed_from_epoch == 1
    assert_params_equal(full.state["params"], resumed.state["params"])
    assert full.state["optimizer"]["step"] == resumed.state["optimizer"]["step"]
    for a, b in zip(full.state["optimizer"]["state"]["exp_avg"], resumed.state["optimizer"]["state"]["exp_avg"]):
        assert torch.equal(a, b)
    assert all(same(a, b) for a, b in zip(metrics(full), metrics(resumed)))
    assert [(m.status, m.diverged_step) for m in full.members] == [(m.status, m.diverged_step) for m in resumed.members]


def test_resume_continues_to_more_epochs_and_rejects_other_settings():
    data = tiny_data()
    two = train(mlp_factory(), MEMBERS, data, SGD)
    three = train(mlp_factory(), MEMBERS, data, TrainConfig(**{**SGD.__dict__, "epochs": 3}))
    continued = train(
        mlp_factory(), MEMBERS, data, TrainConfig(**{**SGD.__dict__, "epochs": 3}), resume_state=two.state
    )
    assert_params_equal(three.state["params"], continued.state["params"])
    with pytest.raises(ValueError, match="different config: lr=0.1, now 0.2"):
        train(mlp_factory(), MEMBERS, data, TrainConfig(**{**SGD.__dict__, "lr": 0.2}), resume_state=two.state)
    with pytest.raises(ValueError, match="other members"):
        train(mlp_factory(), MEMBERS[:2], data, SGD, resume_state=two.state)
    with pytest.raises(ValueError, match="backend 'mlp'; got 'loop'"):
        train(mlp_factory(), MEMBERS, data, SGD, resume_state=two.state, backend="loop")


def test_callbacks_report_every_epoch_and_step_and_a_member_can_be_loaded():
    data = tiny_data()
    epochs, steps = [], []
    config = TrainConfig(epochs=2, batch_size=64, lr=0.1, target=0.05)
    result = train(
        mlp_factory(),
        MEMBERS,
        data,
        config,
        on_epoch=lambda e, recs: epochs.append((e, len(recs))),
        progress=lambda done, total: steps.append((done, total)),
    )
    assert epochs == [(1, 3), (2, 3)]
    assert steps == [(k, 8) for k in range(1, 9)]  # 200 samples / 64 = 4 steps per epoch (last one 8)
    assert [r.step for r in result.members[0].records] == [4, 8]
    assert all(m.steps_to_target == 4 for m in result.members)  # accuracy >= 5% after the first epoch
    model = load_member(mlp_factory(), result.state, 2)
    with torch.no_grad():
        acc = (model(data.x_test).argmax(dim=1) == data.y_test).double().mean().item()
    assert acc == pytest.approx(result.members[2].test_acc)


def test_the_global_rng_is_left_untouched():
    before = torch.get_rng_state()
    for factory, data in ((mlp_factory(), tiny_data()), (dropout_factory, tiny_data())):
        train(factory, MEMBERS, data, SGD)
    assert torch.equal(before, torch.get_rng_state())


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epochs": 0}, "epochs: got 0; expected an integer >= 1"),
        ({"batch_size": -4}, "batch_size: got -4; expected an integer >= 1"),
        ({"batch_size": 3.5}, "batch_size: got 3.5; expected an integer >= 1"),
        ({"lr": 0}, "lr: got 0; expected a finite number > 0"),
        ({"lr": float("nan")}, "lr: got nan; expected a finite number > 0"),
        ({"optimizer": "rmsprop"}, "optimizer: got 'rmsprop'; expected one of sgd, adam"),
        ({"momentum": 1.0}, "momentum: got 1.0; expected a finite number in \\[0, 1\\)"),
        ({"momentum": 0.0, "nesterov": True}, "nesterov=True needs optimizer 'sgd' with momentum > 0"),
        ({"weight_decay": -1e-4}, "weight_decay: got -0.0001; expected a finite number >= 0"),
        ({"betas": (0.9, 1.5)}, "betas\\[1\\]: got 1.5; expected a finite number in \\[0, 1\\)"),
        ({"bias_init": "he_normal"}, "bias_init 'he_normal' cannot fill a 1-D bias"),
        ({"bias_init": "zeroes"}, "bias_init: unknown scheme 'zeroes'"),
        ({"target": 1.5}, "target: got 1.5; expected a finite number in \\(0, 1\\]"),
        ({"loss": "hinge"}, "loss: got 'hinge'; expected one of cross_entropy, mse"),
    ],
)
def test_bad_config_raises_a_value_error_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_config_round_trips_through_a_dict():
    config = TrainConfig(optimizer="adam", lr=3e-4, bias_init={"name": "constant", "params": {"val": 0.1}}, target=0.9)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["bias_init"] == {"name": "constant", "params": {"val": 0.1}}


def test_bad_members_and_data_raise_value_errors():
    data = tiny_data()
    with pytest.raises(ValueError, match="unknown scheme 'he_nromal'"):
        Member("he_nromal", 0)
    with pytest.raises(ValueError, match="seed must be an integer; got 1.5"):
        Member("he_normal", 1.5)
    with pytest.raises(ValueError, match="members is empty"):
        train(mlp_factory(), [], data, SGD)
    bad_labels = TinyData(data.x_train, data.y_train + 5, data.x_test, data.y_test)
    with pytest.raises(ValueError, match="the model outputs 3 classes but the data has label 7"):
        train(mlp_factory(), MEMBERS, bad_labels, SGD)
    with pytest.raises(ValueError, match="data.y_train must be an int64 tensor"):
        train(mlp_factory(), MEMBERS, TinyData(data.x_train, data.y_train.float(), data.x_test, data.y_test), SGD)
    with pytest.raises(ValueError, match="lacks x_test, y_test"):
        train(mlp_factory(), MEMBERS, object.__new__(type("D", (), {"x_train": 1, "y_train": 2})), SGD)


# --- per-member learning rates ---------------------------------------------------------------------

MIXED = [
    Member("he_normal", 0, lr=0.3),
    Member("xavier_uniform", 1, lr=0.01, weight_decay=0.0),
    Member("orthogonal", 0, lr=0.01, weight_decay=0.0),
    Member("he_normal", 0, lr=0.1),
]


@pytest.mark.parametrize("backend", ["mlp", "vmap", "loop"])
@pytest.mark.parametrize("config", [SGD, ADAM], ids=["sgd", "adam"])
def test_a_member_in_a_mixed_lr_ensemble_equals_the_member_trained_alone(backend, config):
    # Alone, a member gets its rates from the config: the reference is a plain fixed-lr run.
    data = tiny_data()
    ensemble = train(mlp_factory(), MIXED, data, config, backend=backend)
    for i, member in enumerate(MIXED):
        wd = config.weight_decay if member.weight_decay is None else member.weight_decay
        solo_config = TrainConfig.from_dict({**config.to_dict(), "lr": member.lr, "weight_decay": wd})
        alone = train(mlp_factory(), [Member(member.scheme, member.seed)], data, solo_config, backend=backend)
        assert_params_close(
            {n: t[i : i + 1] for n, t in ensemble.state["params"].items()}, alone.state["params"], atol=1e-6
        )
        assert metrics(alone)[0] == pytest.approx(metrics(ensemble)[i], abs=1e-6)
    # The rates matter: the same scheme and seed at lr 0.3 and 0.1 end apart.
    assert not torch.allclose(ensemble.state["params"]["1.weight"][0], ensemble.state["params"]["1.weight"][3])


def test_mixed_lr_members_resume_bit_for_bit():
    data = tiny_data()
    config = TrainConfig.from_dict({**SGD.to_dict(), "epochs": 3})
    full = train(mlp_factory(), MIXED, data, config)
    states = []
    train(mlp_factory(), MIXED, data, TrainConfig.from_dict({**SGD.to_dict(), "epochs": 1}), checkpoint=states.append)
    resumed = train(mlp_factory(), MIXED, data, config, resume_state=state_from_bytes(state_to_bytes(states[-1])))
    assert_params_equal(full.state["params"], resumed.state["params"])
    other = [Member(m.scheme, m.seed, lr=0.5) for m in MIXED]
    with pytest.raises(ValueError, match="other members"):
        train(mlp_factory(), other, data, config, resume_state=states[-1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=0.0), "Member lr: got 0.0; expected a finite number > 0"),
        (dict(lr=float("nan")), "Member lr: got nan; expected a finite number > 0"),
        (dict(weight_decay=-1.0), "Member weight_decay: got -1.0; expected"),
    ],
)
def test_bad_member_rates_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Member("he_normal", 0, **kwargs)
