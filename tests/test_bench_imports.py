"""Every name the benchmarks import from initlab exists (they are not run by the suite, so a
moved function would otherwise break them silently)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def _initlab_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every ``from initlab... import name`` and ``import initlab...``, nested too."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "initlab":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "initlab"]
    return found


def _patched_attributes(path: Path) -> list[tuple[str, str]]:
    """``_timed(initlab.x.y, "name", ...)``: attributes the e2e bench wraps by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_timed" and len(node.args) >= 2:
            module, name = node.args[0], node.args[1]
            if isinstance(name, ast.Constant):
                found.append((ast.unparse(module), name.value))
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_initlab_name_a_benchmark_imports_exists(script):
    imports = _initlab_imports(script)
    missing = []
    for module_name, name in imports:
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ImportError:
                missing.append(f"from {module_name} import {name}")
    for module_name, name in _patched_attributes(script):
        if not hasattr(importlib.import_module(module_name), name):
            missing.append(f"{module_name}.{name} (wrapped by _timed)")
    assert not missing, f"{script.name}: {missing}"


def test_the_benchmarks_import_something_from_initlab():
    # guards the test above against a parser that silently finds nothing
    assert sum(len(_initlab_imports(s)) for s in SCRIPTS) >= 10
    assert len(_patched_attributes(BENCH / "e2e_probe.py")) >= 4
