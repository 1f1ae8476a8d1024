"""``initlab diagnose`` through a real subprocess: table, JSON, plot, factories and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FACTORIES = textwrap.dedent("""
    import math
    from torch import nn

    def small(input_shape, num_classes, width=8):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh(),
                             nn.Linear(width, num_classes))

    def fixed(num_classes):
        return nn.Sequential(nn.Linear(48, num_classes))

    def no_weights():
        return nn.Sequential(nn.Flatten(), nn.ReLU())
""")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "initlab", "diagnose", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture
def factories(tmp_path: Path) -> Path:
    (tmp_path / "diag_factories.py").write_text(FACTORIES)
    return tmp_path


def test_xavier_relu_json_and_plot(tmp_path):
    plot = tmp_path / "sp.png"
    res = _run(
        "--model",
        "mlp",
        "--depth",
        "29",
        "--width",
        "64",
        "--activation",
        "relu",
        "--scheme",
        "xavier_uniform",
        "--batch",
        "32",
        "--seed",
        "3",
        "--json",
        "--plot",
        str(plot),
    )
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["scheme"] == "xavier_uniform" and payload["seed"] == 3
    assert len(payload["layers"]) == 30 and payload["layers"][0]["name"] == "fc1"
    assert {f["kind"] for f in payload["flags"]} == {"vanishing"}
    assert payload["layers"][-1]["pred_out_var"] is not None
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"plot: {plot}" in res.stderr


def test_he_relu_table_with_jacobian_has_no_flags():
    res = _run(
        "--depth",
        "8",
        "--width",
        "64",
        "--scheme",
        "he_normal",
        "--param",
        "mode=fan_in",
        "--batch",
        "32",
        "--jacobian",
        "--jacobian-samples",
        "4",
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("mlp relu he_normal(mode=fan_in): batch 32")
    assert lines[1].split()[:4] == ["layer", "kind", "act", "units"]
    assert lines[2].split()[:4] == ["fc1", "linear", "relu", "64"]
    assert "flags: none" in res.stdout
    assert "input-output Jacobian (exact, 4 samples x 10 singular values)" in res.stdout


def test_factory_with_zero_init_is_flagged_symmetric(factories):
    res = _run(
        "--model", "diag_factories:small", "--input-shape", "3,4,4", "--scheme", "zeros", "--batch", "8", cwd=factories
    )
    assert res.returncode == 0, res.stderr
    assert "symmetric: 1: 100% of 8 units have a twin" in res.stdout
    assert "dead: 1: 100% of 8 units output exactly 0" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "no_such_module_xyz:make"), "cannot import module 'no_such_module_xyz'"),
        (("--model", "diag_factories:no_weights"), "has no weighted layer"),
        (("--model", "diag_factories:fixed", "--input-shape", "10"), "the model failed on inputs of shape (256, 10)"),
        (("--input-shape", "3,a"), "initlab diagnose: error: --input-shape: got '3,a'; expected positive integers"),
    ],
)
def test_bad_input_exits_2_with_one_line(factories, args, message):
    res = _run(*args, cwd=factories)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert message in res.stderr


def test_plot_with_an_unknown_format_fails_before_any_work(tmp_path):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "initlab", "diagnose", "--width", "8", "--plot", str(tmp_path / "x.txt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"initlab diagnose: error: --plot '{tmp_path / 'x.txt'}': the file name must end in .png, .svg or .pdf"
    ]
