"""``initlab study``: the article's claims tested by experiment (see base.py for the framework).

Each study module registers itself; importing this package registers them all.
"""

from __future__ import annotations

import importlib

from initlab.studies.base import REGISTRY, StudyContext, StudyResult, get, register

# Modules in the order of ``initlab study all``; a module that is missing is skipped so the
# framework can land before every study does.
STUDY_MODULES = ("symmetry", "scale", "depth", "activation_match", "per_layer", "bias", "criticality",
                 "normalization")

for _name in STUDY_MODULES:
    try:
        importlib.import_module(f"initlab.studies.{_name}")
    except ModuleNotFoundError as exc:  # pragma: no cover - only while a study is being written
        if exc.name != f"initlab.studies.{_name}":
            raise


def names() -> list[str]:
    return list(REGISTRY)


__all__ = ["REGISTRY", "StudyContext", "StudyResult", "get", "names", "register"]
