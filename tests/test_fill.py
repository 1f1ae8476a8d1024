"""One way to fill a model: every path draws a parameter from ``param_generator(seed, name)``.

The invariant behind paired comparisons (common random numbers): at the same seed, the same
scheme and parameters give the same bits for a parameter, whether ``initlab.initialize`` with a
scheme policy, an ``"auto"`` plan entry, or a compare engine member wrote it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import initlab
from initlab.engine import Member
from initlab.engine.init import initial_state
from initlab.errors import UserError
from initlab.schemes import get_scheme
from initlab.schemes.fill import fill_model_
from initlab.seeding import derive_generator, param_generator
from initlab.sweep.chunks import member_init


def relu_mlp() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def engine_params(scheme: str, seed: int) -> dict[str, torch.Tensor]:
    """A compare member's initial parameters, through the engine's own path (and the sweep's spec parsing)."""
    params, _ = initial_state(
        relu_mlp, [Member(member_init(scheme), seed)], bias_init=get_scheme("zeros"), device=torch.device("cpu")
    )
    return {name: stacked[0] for name, stacked in params.items()}


def initialized(policy: str, seed: int) -> tuple[nn.Module, initlab.Plan]:
    model = relu_mlp()
    return model, initlab.initialize(model, policy, seed=seed)


@pytest.mark.parametrize("seed", [0, 13])
def test_initialize_the_auto_plan_and_the_engine_member_give_the_same_bits(seed):
    by_scheme, _ = initialized("he_normal", seed)
    by_auto, auto_plan = initialized("auto", seed)
    member = engine_params("he_normal", seed)
    auto_member = engine_params("auto", seed)
    he = get_scheme("he_normal")
    # auto writes He with nonlinearity='relu', the scheme's default is leaky_relu with a=0: the same
    # gain sqrt(2) to the bit, so the same distribution; the invariant is about such entries.
    he_entries = [e for e in auto_plan.entries if e.scheme == "he_normal"]
    assert [e.param for e in he_entries] == ["0.weight", "2.weight"]
    for entry in he_entries:
        assert initlab.gain(entry.params["nonlinearity"]) == initlab.gain(he.params["nonlinearity"], he.params["a"])
        name = entry.param
        expected = by_scheme.get_parameter(name)
        assert torch.equal(by_auto.get_parameter(name), expected)
        assert torch.equal(member[name], expected)
        assert torch.equal(auto_member[name], expected)
    # the output layer: auto picks Xavier; the xavier_uniform member at this seed has the same bits
    assert auto_plan["4.weight"].scheme == "xavier_uniform"
    assert torch.equal(engine_params("xavier_uniform", seed)["4.weight"], by_auto.get_parameter("4.weight"))


def test_the_shared_streams_differ_by_seed_and_by_name():
    a, b = engine_params("he_normal", 0), engine_params("he_normal", 1)
    assert not torch.equal(a["2.weight"], b["2.weight"])
    assert param_generator(0, "0.weight").initial_seed() != param_generator(0, "2.weight").initial_seed()


def test_param_generator_is_the_policy_convention():
    assert param_generator(5, "fc.weight").initial_seed() == derive_generator(5, "fc.weight").initial_seed()


def test_models_build_and_diagnose_fill_through_the_same_streams():
    model = initlab.models.build("mlp", input_shape=(6,), num_classes=3, width=16, depth=1, seed=4)
    name = next(n for n, p in model.named_parameters() if p.dim() == 2)
    expected = get_scheme("torch_default").sample(
        tuple(model.get_parameter(name).shape), generator=param_generator(4, name), dtype=torch.float32
    )
    assert torch.equal(model.get_parameter(name), expected)


def test_fill_model_casts_to_the_parameter_dtype_and_rejects_unknown_names():
    model = nn.Linear(4, 3).to(torch.float64)
    fill_model_(model, {"weight": get_scheme("xavier_uniform")}, seed=2)
    expected = get_scheme("xavier_uniform").sample((3, 4), generator=param_generator(2, "weight"), dtype=torch.float32)
    assert model.weight.dtype == torch.float64
    assert torch.equal(model.weight, expected.to(torch.float64))
    with pytest.raises(UserError, match="'wieght'.*weight, bias"):
        fill_model_(model, {"wieght": get_scheme("zeros")}, seed=2)
