"""The real command, through a subprocess: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import initlab


def run(*args):
    return subprocess.run([sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=120)


def test_schemes_lists_every_registered_scheme_as_json():
    res = run("schemes", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == initlab.list_schemes()
    he = next(r for r in rows if r["name"] == "he_normal")
    assert "kaiming" in he["aliases"] and "He et al. 2015" in he["reference"] and he["article"] == "He"


def test_schemes_table_and_one_scheme_in_full():
    res = run("schemes")
    assert res.returncode == 0 and "xavier_uniform" in res.stdout and "Glorot" in res.stdout
    res = run("schemes", "glorot")
    assert res.returncode == 0 and res.stdout.startswith("xavier_uniform") and ".. math::" in res.stdout


def test_gain_prints_the_value():
    assert abs(float(run("gain", "relu").stdout) - math.sqrt(2)) < 1e-5
    assert abs(float(run("gain", "leaky_relu", "0.2").stdout) - math.sqrt(2 / 1.04)) < 1e-5
    assert abs(float(run("gain", "tanh", "--method", "moment").stdout) - 1.5927) < 1e-3


def test_user_errors_exit_2_with_one_line_and_no_traceback():
    for args in (("gain", "rellu"), ("schemes", "he_norml")):
        res = run(*args)
        assert res.returncode == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr
        assert lines[0].startswith(f"initlab {args[0]}: error: unknown")
