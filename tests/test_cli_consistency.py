"""One parser, one loader, one error prefix: the same input reads the same in every command.

Through the real command (a subprocess), as a user meets them: scheme specs, shapes, ``gain``'s
parameter, ``module:function`` / ``file.py:function`` targets and the error line's prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from initlab.errors import UserError
from initlab.loader import call_factory, load_callable

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FACTORIES = textwrap.dedent(
    """
    import torch.nn as nn


    def make(input_shape=(6,), num_classes=3):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))


    def needs_width(width):
        return nn.Linear(width, 2)


    def broken():
        raise RuntimeError("no GPU here")
    """
)


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "consistency_nets.py"
    path.write_text(FACTORIES)
    return path


def initlab(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=300, env=ENV, cwd=cwd
    )


def one_error_line(res: subprocess.CompletedProcess, command: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout == ""
    assert lines[0].startswith(f"initlab {command}: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("schemes", "message"),
    [
        ("he_normal(mode=fan_out,)", "empty parameter (a stray comma)"),
        ("he_normal,", "an empty item (a stray or trailing comma)"),
    ],
)
def test_compare_refuses_bad_scheme_specs_before_any_work(tmp_path, schemes, message):
    store = tmp_path / "s.sqlite"
    line = one_error_line(initlab("compare", "--schemes", schemes, "--seeds", "2", "--store", str(store)), "compare")
    assert message in line
    assert not store.exists()


def test_diagnose_takes_the_scheme_spec_compare_takes():
    res = initlab(
        "diagnose", "--scheme", "he_normal(mode=fan_out)", "--width", "8", "--depth", "1", "--batch", "16", "--json"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["scheme"] == "he_normal" and out["params"] == {"mode": "fan_out"}
    line = one_error_line(
        initlab("diagnose", "--scheme", "he_normal(mode=fan_out)", "--param", "mode=fan_in"), "diagnose"
    )
    assert "'mode' is already set by --scheme" in line
    assert "given twice" in one_error_line(initlab("diagnose", "--scheme", "he_normal(a=0, a=1)"), "diagnose")


@pytest.mark.parametrize("command", [("diagnose",), ("plan", "--model", "mlp")])
def test_one_shape_parser_rejects_empty_items(command):
    line = one_error_line(initlab(*command, "--input-shape", "784,,"), command[0])
    assert "--input-shape: got '784,,'; expected positive integers" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("relu", "0.5"), "param: got 0.5; expected no parameter: relu takes none"),
        (("leaky_relu", "nan"), "param: got nan; expected a finite number"),
    ],
)
def test_gain_refuses_a_parameter_it_cannot_use(args, message):
    assert message in one_error_line(initlab("gain", *args), "gain")


def test_argparse_errors_and_user_errors_share_one_prefix(tmp_path):
    from_argparse = one_error_line(initlab("compare", "--lr", "abc"), "compare")
    assert "argument --lr: got 'abc'; expected a finite number > 0" in from_argparse
    from_library = one_error_line(
        initlab("compare", "--momentum", "2", "--store", str(tmp_path / "s.sqlite")), "compare"
    )
    assert "momentum: got 2.0; expected a finite number in [0, 1)" in from_library


def test_plan_and_diagnose_load_file_targets_and_name_a_failing_factory(factory_file, tmp_path):
    res = initlab(
        "diagnose",
        "--model",
        f"{factory_file}:make",
        "--input-shape",
        "6",
        "--num-classes",
        "3",
        "--batch",
        "8",
        "--json",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model"].endswith("consistency_nets.py:make")
    line = one_error_line(initlab("plan", f"{factory_file}:needs_width", cwd=tmp_path), "plan")
    assert f"factory '{factory_file}:needs_width' failed: TypeError:" in line and "width" in line
    line = one_error_line(initlab("plan", f"{factory_file}:broken", cwd=tmp_path), "plan")
    assert line.endswith("failed: RuntimeError: no GPU here")


def test_the_loader_leaves_sys_path_as_it_was(factory_file):
    before = list(sys.path)
    make = load_callable(f"{factory_file}:make")
    assert sys.path == before
    assert call_factory(make, "make").__class__.__name__ == "Sequential"
    with pytest.raises(UserError, match="no attribute 'nope'"):
        load_callable(f"{factory_file}:nope")
    with pytest.raises(UserError, match="cannot import module 'initlab_no_such_mod_q'"):
        load_callable("initlab_no_such_mod_q:make")
    assert sys.path == before
