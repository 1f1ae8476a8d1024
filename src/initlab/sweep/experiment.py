"""Which stored experiment a compare writes into, and the identity of the data it trains on.

A new experiment, or with ``resume`` the stored one whose config (data identity included)
equals this one; data that changed since is refused with what changed.
"""

from __future__ import annotations

from typing import Any

from initlab.errors import UserError
from initlab.sweep.config import CompareConfig


def _config_diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")


def open_experiment(store, config: CompareConfig, resume: bool | str):
    """The experiment to write into: a new one, or (resume) the stored one with this config."""
    wanted = config.to_dict()
    if not resume:
        return store.create_experiment(wanted)
    if isinstance(resume, str):
        experiment = store.get_experiment(resume)
        if experiment.config != wanted:
            raise UserError(
                f"resume: experiment {experiment.id} has a different config ({_config_diff(experiment.config, wanted)}); "
                f"rerun with its settings, or start a new experiment without --resume"
            )
        return experiment
    experiment = store.find_experiment(config.config_hash())
    if experiment is None:
        _refuse_changed_data(store, wanted)
        known = ", ".join(e.id for e in store.list_experiments()[-5:]) or "none"
        raise UserError(
            f"resume: no experiment in {store.location} has this config (hash {config.config_hash()[:12]}); "
            f"latest experiments: {known}. Use the same settings as the run to resume, or drop --resume"
        )
    return experiment


def _refuse_changed_data(store, wanted: dict) -> None:
    """``UserError`` when a stored experiment matches ``wanted`` in all but its data's identity."""
    rest = {k: v for k, v in wanted.items() if k != "data_source"}
    for experiment in reversed(store.list_experiments()):
        old = experiment.config
        if "data_source" in old and {k: v for k, v in old.items() if k != "data_source"} == rest:
            before, now = old["data_source"], wanted.get("data_source") or {}
            raise UserError(
                f"resume: the data changed since experiment {experiment.id}: {before.get('path')} had "
                f"{before.get('size')} bytes, sha256 {str(before.get('sha256'))[:12]}; now {now.get('size')} bytes, "
                f"sha256 {str(now.get('sha256'))[:12]}. Restore the file, or start a new experiment without --resume"
            )


def with_data_source(config: CompareConfig, dataset: Any) -> CompareConfig:
    """``config`` with the identity of ``dataset``'s source; ``UserError`` if it names other data."""
    import dataclasses

    source = dict(dataset.spec.get("source") or {}) or None
    if config.data_source is not None and config.data_source != source:
        before, now = config.data_source, source or {}
        raise UserError(
            f"the data changed: the config names {before.get('path')} with sha256 "
            f"{str(before.get('sha256'))[:12]}, the file now has sha256 {str(now.get('sha256'))[:12]}"
        )
    if dataset.task != config.task:
        raise UserError(f"dataset {config.dataset!r} is {dataset.task} data; the config's task is {config.task}")
    if config.task == "regression" and dataset.num_classes != 1:
        raise UserError(
            f"dataset {config.dataset!r} has {dataset.num_classes} regression targets; compare reports the "
            f"MSE of one target in its own units: keep one target column"
        )
    return dataclasses.replace(config, data_source=source)


def load_dataset(config: CompareConfig, data_dir: str | None = None):
    """The configured dataset, read as ``config.task`` needs it."""
    from initlab.data import load

    options = dict(config.data_options)
    if config.task != "classification":
        options["task"] = config.task
    return load(config.dataset, data_dir=data_dir, **options)
