"""``initlab study``: the article's claims tested by experiment (see base.py for the framework).

Each study module registers itself; importing this package registers them all.
"""

from __future__ import annotations

import importlib

from initlab.studies.base import REGISTRY, StudyContext, StudyResult, get, register

# Modules in the order of ``initlab study all``.
STUDY_MODULES = (
    "symmetry",
    "scale",
    "depth",
    "activation_match",
    "per_layer",
    "bias",
    "criticality",
    "normalization",
    "depth_frontier",
    "lr_transfer",
)

for _name in STUDY_MODULES:
    importlib.import_module(f"initlab.studies.{_name}")


def names() -> list[str]:
    return list(REGISTRY)


__all__ = ["REGISTRY", "StudyContext", "StudyResult", "get", "names", "register"]
