"""initlab: pick, check and benchmark neural-network weight initialization (PyTorch).

Public names only (DESIGN.md). The heavier rooms (policy, diagnose, theory, compare) load on
first use, so ``import initlab`` and the CLI start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"  # the one place the version is written; pyproject.toml reads it

from initlab.errors import UserError

# Everything below imports torch (~2 s): loaded on first use, so `initlab --help` stays fast.
_LAZY = {
    "Scheme": ("initlab.schemes", "Scheme"),
    "gain": ("initlab.schemes", "gain"),
    "get_scheme": ("initlab.schemes", "get_scheme"),
    "init_": ("initlab.schemes", "init_"),
    "list_schemes": ("initlab.schemes", "list_schemes"),
    "plan": ("initlab.policy", "plan"),
    "initialize": ("initlab.policy", "initialize"),
    "Plan": ("initlab.policy", "Plan"),
    "diagnose": ("initlab.diagnose", None),  # a callable package: initlab.diagnose(model, x)
    "Diagnosis": ("initlab.diagnose", "Diagnosis"),
    "compare": ("initlab.sweep", "compare"),
    "CompareConfig": ("initlab.sweep.config", "CompareConfig"),
    "theory": ("initlab.theory", None),
    "models": ("initlab.models", None),
    "data": ("initlab.data", None),
    "stats": ("initlab.stats", None),
    "suggest_lr": ("initlab.lr", "suggest_lr"),
    "LrSuggestion": ("initlab.lr", "LrSuggestion"),
    "mup": ("initlab.mup", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'initlab' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["__version__", "UserError", *_LAZY]
