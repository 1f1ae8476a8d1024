"""initlab.checks and errors.lookup: one message format, one name normalisation, one "did you mean"."""

from __future__ import annotations

import math

import pytest

import initlab
from initlab import checks
from initlab.activations import canonical
from initlab.data import load
from initlab.errors import UserError, lookup, normalize_name
from initlab.schemes import parse_spec, split_specs


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: checks.integer("epochs", 0, minimum=1), "epochs: got 0; expected an integer >= 1"),
        (lambda: checks.integer("depth", True, minimum=0), "depth: got True; expected an integer >= 0"),
        (lambda: checks.integer("k", 2.0), "k: got 2.0; expected an integer"),
        (
            lambda: checks.real("p", 1.0, low=0.0, high=1.0, high_open=True),
            r"p: got 1.0; expected a finite number in \[0, 1\)",
        ),
        (lambda: checks.positive("lr", math.inf), "lr: got inf; expected a finite number > 0"),
        (lambda: checks.finite("x", math.nan), "x: got nan; expected a finite number"),
        (
            lambda: checks.choice("optimizer", "adamw", ("sgd", "adam")),
            r"optimizer: got 'adamw'; expected one of sgd, adam \(did you mean 'adam'\?\)",
        ),
        (
            lambda: checks.parse_shape("--input-shape", "784,,"),
            "--input-shape: got '784,,'; expected positive integers",
        ),
        (lambda: checks.parse_shape("--input-shape", "1,0"), "--input-shape: got '1,0'"),
    ],
)
def test_one_message_format(call, message):
    with pytest.raises(UserError, match=f"^{message}"):
        call()


def test_checks_return_converted_values():
    assert checks.real("lr", 1) == 1.0 and isinstance(checks.real("lr", 1), float)
    assert checks.integer("n", 3, minimum=1, maximum=3) == 3
    assert checks.parse_shape("s", "1x28x28") == (1, 28, 28) == checks.parse_shape("s", "1, 28, 28")
    assert checks.real("x", math.inf, finite=False) == math.inf


def test_every_registry_normalises_names_one_way():
    assert normalize_name(" Fashion-MNIST ") == normalize_name("fashion_mnist") == "fashion_mnist"
    assert initlab.get_scheme("He_Normal").name == "he_normal"
    assert initlab.get_scheme("Kaiming").name == "he_normal"  # an alias, any case
    assert canonical("Leaky-ReLU") == "leaky_relu"
    assert isinstance(
        initlab.models.build("MLP", input_shape=(4,), num_classes=2, width=3, depth=1), initlab.models.MLP
    )
    assert load("Synthetic", n_train=20, n_test=10).x_train.shape[0] == 20
    from initlab.studies import get

    with pytest.raises(UserError, match="unknown study 'symetry'. Did you mean 'symmetry'"):
        get("symetry")


def test_lookup_suggests_the_closest_and_lists_aliases():
    assert lookup("thing", "B-C", ["a", "b_c"], {"bee": "b_c"}) == "b_c"
    assert lookup("thing", "BEE", ["a", "b_c"], {"bee": "b_c"}) == "b_c"
    with pytest.raises(UserError, match=r"unknown thing 'b_cc'. Did you mean 'b_c'.*Allowed: a, b_c, bee"):
        lookup("thing", "b_cc", ["a", "b_c"], {"bee": "b_c"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("he_normal(mode=fan_out,)", "stray comma"),
        ("he_normal(a=1, a=2)", "'a' given twice"),
        ("he_normal(mode)", "is not key=value"),
        ("he_normal(a=1", "expected NAME or NAME"),
        ("", "expected NAME"),
    ],
)
def test_the_spec_parser_refuses_what_it_cannot_read(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_spec(text)


def test_spec_lists_keep_commas_in_parentheses_and_refuse_empty_items():
    assert split_specs("zeros, he_normal(mode=fan_out, a=0)") == ["zeros", "he_normal(mode=fan_out, a=0)"]
    assert parse_spec("he_normal(mode=fan_out, a=0)") == ("he_normal", {"mode": "fan_out", "a": 0})
    for text in ("zeros,", "zeros,,he", ",zeros", "he_normal(a=0"):
        with pytest.raises(UserError):
            split_specs(text)
