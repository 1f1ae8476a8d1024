"""μP: the plan's classes and multipliers against Tensor Programs V, Table 3 (hand-computed),
param groups, the coordinate check (slopes with tolerances) and the errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import initlab
from initlab.errors import UserError
from initlab.mup import coord_check, param_groups
from initlab.mup.coord import check_widths, fit_slope
from initlab.policy import Plan


def mlp(width: int, d_in: int = 16, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes)
    )


class Block(nn.Module):
    """Embedding, one pre-LN transformer block (attention written out, logits / d), readout."""

    def __init__(self, d: int, vocab: int = 50, tied: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.head.weight = self.emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.emb(idx)
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1], dim=-1)  # μP: 1/d, not 1/sqrt(d)
        h = h + self.proj(att @ v)
        h = h + self.fc2(torch.relu(self.fc1(self.ln2(h))))
        return self.head(h)


def mup_of(plan: Plan, name: str) -> dict:
    return plan[name].mup


def test_at_base_width_the_plan_and_weights_equal_the_base_policy():
    base, mupped = mlp(64), mlp(64)
    p_auto = initlab.initialize(base, "auto", seed=3)
    p_mup = initlab.initialize(mupped, "auto+mup", base_width=64, seed=3)
    for a, b in zip(p_auto.entries, p_mup.entries):
        assert (a.scheme, a.params) == (b.scheme, b.params)
        assert b.mup["init_std_mult"] == 1.0 and b.mup["lr_mult_adam"] == 1.0 and b.mup["lr_mult_sgd"] == 1.0
    for (name, x), y in zip(base.named_parameters(), mupped.parameters()):
        assert torch.equal(x, y), name
    assert p_mup["2.weight"].mup["class"] == "hidden"  # the class is known at the base width too


def test_mlp_follows_table_3_hand_computed():
    # width 256, base 64: ñ = 4. "mup" base: N(0, 1/fan_in) for every matrix.
    model = mlp(256)
    plan = initlab.initialize(model, "mup", base_width=64, seed=0)
    expected = {  # class, init std x, Adam lr x, SGD lr x
        "0.weight": ("input", 1.0, 1.0, 4.0),
        "0.bias": ("input", 1.0, 1.0, 4.0),
        "2.weight": ("hidden", 1.0, 0.25, 1.0),
        "2.bias": ("input", 1.0, 1.0, 4.0),
        "4.weight": ("output", 0.5, 0.25, 0.25),
        "4.bias": ("fixed", 1.0, 1.0, 1.0),
    }
    for name, (klass, std, adam, sgd) in expected.items():
        m = mup_of(plan, name)
        assert (m["class"], m["init_std_mult"], m["lr_mult_adam"], m["lr_mult_sgd"]) == (
            klass,
            pytest.approx(std),
            pytest.approx(adam),
            pytest.approx(sgd),
        ), name
        assert "Table 3" in m["reason"]
    # readout std: sqrt(1/256) * 0.5 = 1/32 (2560 draws: relative s.e. of a std ~ 1.4%; 6% tolerance)
    assert model[4].weight.std().item() == pytest.approx(1 / 32, rel=0.06)
    assert model[2].weight.std().item() == pytest.approx(1 / 16, rel=0.03)


def test_fan_avg_base_schemes_are_corrected_to_fan_in_scaling():
    # auto gives the readout Xavier (fan_avg): its variance shrinks by fan_avg's ratio, which μP undoes:
    # var x = (1/ñ) * ((10+256)/(10+64)) * (64/256)
    plan = initlab.plan(mlp(256), "auto+mup", base_width=64)
    expected = math.sqrt(0.25 * (266 / 74) * 0.25)
    assert plan["4.weight"].mup["init_std_mult"] == pytest.approx(expected)


def test_transformer_block_follows_table_3():
    d, base = 128, 32  # ñ = 4
    plan = initlab.plan(Block(d), "mup", base_width=base)
    expected = {  # class, Adam lr x, SGD lr x, init std x
        "emb.weight": ("input", 1.0, 4.0, 1.0),
        "ln1.weight": ("input", 1.0, 4.0, 1.0),
        "ln1.bias": ("input", 1.0, 4.0, 1.0),
        "qkv.weight": ("hidden", 0.25, 1.0, 1.0),
        "qkv.bias": ("input", 1.0, 4.0, 1.0),
        "proj.weight": ("hidden", 0.25, 1.0, 1.0),
        "fc1.weight": ("hidden", 0.25, 1.0, 1.0),
        "fc2.weight": ("hidden", 0.25, 1.0, 1.0),
        "head.weight": ("output", 0.25, 0.25, 0.5),
    }
    for name, (klass, adam, sgd, std) in expected.items():
        m = mup_of(plan, name)
        assert (m["class"], m["lr_mult_adam"], m["lr_mult_sgd"], m["init_std_mult"]) == (
            klass,
            pytest.approx(adam),
            pytest.approx(sgd),
            pytest.approx(std),
        ), name


def test_tied_embedding_readout_is_one_input_tensor_with_an_output_multiplier():
    plan = initlab.plan(Block(128, tied=True), "mup", base_width=32)
    assert "head.weight" not in plan
    m = mup_of(plan, "emb.weight")
    assert m["class"] == "input" and m["lr_mult_adam"] == 1.0
    assert m["output_mult"] == pytest.approx(0.25) and "MuSharedReadout" in m["reason"]


def test_base_model_gives_the_same_multipliers_as_base_width():
    by_width = initlab.plan(mlp(256), "mup", base_width=64)
    by_model = initlab.plan(mlp(256), "mup", base_model=mlp(64))
    assert [e.mup["lr_mult_adam"] for e in by_width] == [e.mup["lr_mult_adam"] for e in by_model]
    assert [e.mup["class"] for e in by_width] == [e.mup["class"] for e in by_model]


def test_mup_without_base_shapes_is_a_clear_error():
    with pytest.raises(UserError, match="base_width=") as err:
        initlab.initialize(mlp(64), "mup", seed=0)
    assert "base_model" in str(err.value)
    with pytest.raises(UserError, match="base_width must be a positive integer; got 0"):
        initlab.plan(mlp(64), "auto+mup", base_width=0)


class WithLoose(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.inp = nn.Linear(8, d)
        self.mix = nn.Parameter(torch.ones(d, d) / d)  # not a layer: the graph cannot place it
        self.out = nn.Linear(d, 3)

    def forward(self, x):
        return self.out(torch.relu(self.inp(x)) @ self.mix)


def test_a_parameter_the_classifier_cannot_place_is_warned_about_by_name():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = initlab.plan(WithLoose(64), "mup", base_width=32)
    text = " ".join(str(w.message) for w in caught)
    assert "'mix' (placed as hidden)" in text
    assert plan["mix"].mup["class"] == "hidden"


def test_plan_with_mup_records_round_trips_through_json():
    plan = initlab.plan(Block(64), "auto+mup", base_width=32)
    assert Plan.from_dict(plan.to_json()) == plan


def test_param_groups_give_the_expected_lr_per_parameter():
    model = mlp(256)
    plan = initlab.initialize(model, "mup", base_width=64, seed=0)
    for optimizer, expected in (
        ("adam", {"0.weight": 1e-2, "2.weight": 2.5e-3, "4.weight": 2.5e-3, "4.bias": 1e-2}),
        ("sgd", {"0.weight": 4e-2, "2.weight": 1e-2, "4.weight": 2.5e-3, "2.bias": 4e-2}),
    ):
        groups = param_groups(model, plan, 1e-2, optimizer)
        lr_of = {n: g["lr"] for g in groups for n in g["names"]}
        assert sorted(lr_of) == sorted(n for n, _ in model.named_parameters())
        for name, lr in expected.items():
            assert lr_of[name] == pytest.approx(lr), (optimizer, name)
    opt = torch.optim.Adam(param_groups(model, plan, 1e-2, "adam"))
    assert sorted({g["lr"] for g in opt.param_groups}) == [pytest.approx(2.5e-3), pytest.approx(1e-2)]


def test_param_groups_errors():
    model = mlp(64)
    with pytest.raises(UserError, match="needs a μP plan"):
        param_groups(model, initlab.plan(model, "auto"), 1e-3)
    plan = initlab.plan(model, "mup", base_width=32)
    with pytest.raises(UserError, match="optimizer must be one of adam, sgd; got 'rmsprop'"):
        param_groups(model, plan, 1e-3, "rmsprop")
    with pytest.raises(UserError, match="lr must be a number > 0; got -1"):
        param_groups(model, plan, -1)


def test_fit_slope_and_width_checks():
    assert fit_slope([64, 128, 256], [1.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert fit_slope([64, 128, 256], [3.0, 3.0, 3.0]) == pytest.approx(0.0)
    assert check_widths("64,128,256") == [64, 128, 256]
    for bad in ("64,128", "64,256,128", "64,64,128"):
        with pytest.raises(UserError, match="at least three strictly increasing"):
            check_widths(bad)


def test_coord_check_is_flat_under_mup_and_grows_under_sp():
    # Adam, lr 0.01, 3 steps on one batch of 32 Gaussian inputs, seed 0. Tolerances from the
    # theory: under SP the readout's update grows about linearly in width (slope ~1 for Adam);
    # under μP every |Δh| slope is 0 up to finite-width noise (measured within ±0.1 here).
    widths = [64, 128, 256, 512]
    sp = coord_check(mlp, widths, policy="sp", lr=1e-2, batch=32)
    mu = coord_check(mlp, widths, policy="mup", lr=1e-2, batch=32)
    sp_slopes, mu_slopes = sp.slopes(), mu.slopes()
    assert sp_slopes["4"][1] > 0.6 and sp_slopes["2"][1] > 0.4
    assert "4" in sp.flagged()
    for layer, (_act, delta) in mu_slopes.items():
        assert abs(delta) < 0.15, (layer, delta)
    assert mu.delta["4"][0] == [0.0] * len(widths)  # step 0 is the init itself


def _cli(*args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args], check=False, capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_bad_input_exits_2_with_one_line():
    for args, needle in (
        (("diagnose", "--coord-check", "--widths", "64,32,128"), "strictly increasing"),
        (("diagnose", "--coord-check", "--widths", "64,128"), "at least three"),
        (("plan", "--model", "mlp", "--policy", "mup"), "--base-width"),
    ):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_coord_check_json_flags_the_sp_readout():
    proc = _cli(
        "diagnose",
        "--coord-check",
        "--widths",
        "64,128,256,512",
        "--parametrization",
        "sp",
        "--input-shape",
        "16",
        "--batch",
        "32",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["policy"] == "sp" and out["widths"] == [64, 128, 256, 512]
    assert "out" in out["flagged"] and out["slopes"]["out"]["delta"] > 0.6
