"""``initlab plan``: the real command through a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

FACTORY = textwrap.dedent(
    """
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(12, 32), nn.Linear(32, 32), nn.Linear(32, 3)

        def forward(self, x):
            return self.out(F.gelu(self.fc2(F.relu(self.fc1(x)))))


    def make():
        return Net()


    def untraceable():
        class Branchy(Net):
            def forward(self, x):
                h = self.fc1(x).tanh()
                if h.sum() > -1e9:
                    h = self.fc2(h)
                return self.out(h)
        return Branchy()
    """
)


@pytest.fixture
def factory_dir(tmp_path):
    (tmp_path / "plan_factory_mod.py").write_text(FACTORY)
    return tmp_path


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "initlab", "plan", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_plan_json_for_a_module_function_target(factory_dir):
    res = run("plan_factory_mod:make", "--json", cwd=factory_dir)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    entries = {e["param"]: e for e in data["entries"]}
    assert data["method"] == "fx" and data["policy"] == "auto"
    assert entries["fc1.weight"]["params"]["nonlinearity"] == "relu"
    assert entries["fc2.weight"]["params"]["nonlinearity"] == "gelu"
    assert entries["out.weight"]["role"] == "output" and entries["out.bias"]["scheme"] == "zeros"


def test_plan_table_for_a_file_target_with_overrides_and_hooks_fallback(factory_dir):
    target = f"{factory_dir / 'plan_factory_mod.py'}:untraceable"
    res = run(target, "--input-shape", "12", "--set", "out.weight=orthogonal")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Plan: policy=auto + 1 override(s), introspection=hooks")
    assert any("fc1.weight" in ln and "xavier_uniform" in ln for ln in lines)  # tanh, matched on values
    assert any("out.weight" in ln and "orthogonal" in ln and "override" in ln for ln in lines)


def test_plan_of_a_builtin_model():
    pytest.importorskip("initlab.models")
    res = run("--model", "mlp", "--depth", "2", "--width", "16", "--activation", "selu", "--json")
    assert res.returncode == 0, res.stderr
    entries = [e for e in json.loads(res.stdout)["entries"] if e["role"] == "hidden"]
    assert len(entries) == 2 and all(e["scheme"] == "lecun_normal" for e in entries)


@pytest.mark.parametrize(
    "args, message",
    [
        (("nowhere_mod_xyz:make",), "cannot import module 'nowhere_mod_xyz'"),
        (("plan_factory_mod:make", "--policy", "he_norml"), "he_normal"),
        (("plan_factory_mod:make", "--input-shape", "3,a"), "--input-shape"),
        (("plan_factory_mod:missing",), "no attribute 'missing'"),
        (("plan_factory_mod:untraceable", "--input-shape", "5"), "forward failed"),
        ((), "give a target"),
    ],
)
def test_user_errors_exit_2_with_one_line(factory_dir, args, message):
    res = run(*args, cwd=factory_dir)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert message in res.stderr
