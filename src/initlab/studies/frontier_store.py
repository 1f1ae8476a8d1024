"""The depth-frontier study's runs in the results store (``initlab.store``, as ``initlab compare``).

One experiment per (family, activation, depth): its config names the study and every setting
that decides that depth's results (dataset, training-set limit, width, epochs, batch size, the
learning-rate grid and budget of ``suggest_lr``), so ``find_experiment`` recognises a rerun with
the same settings. Its cells are (scheme, seed): a ``RunRecord`` per cell (test accuracy and
loss, last-epoch training metrics, wall time) whose ``extra`` holds the selected learning rate,
``suggest_lr``'s grid with its validation losses and accuracies, the Jacobian spread and the
depth scale at init; an ``StoredEpoch`` per training epoch. Cells already committed are not
recomputed (an interrupted run resumes), and the study's tables are built from the records read
back here, never from memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1  # bump when a cell's protocol changes: old records then stop matching
ROW_EXTRA = (
    "lr",
    "lr_ok",
    "lr_grid",
    "lr_val_loss",
    "lr_val_acc",
    "jacobian_spread",
    "six_xi_c",
)


def experiment_config(family: str, activation: str, depth: int, s: dict[str, Any]) -> dict[str, Any]:
    """What decides one depth's results (``s``: that depth's settings); no paths, no run-time knobs."""
    grid = s["lr_grid"]
    return {
        "study": "depth-frontier",
        "version": CONFIG_VERSION,
        "family": family,
        "activation": activation,
        "depth": int(depth),
        "width": int(s["width"]),
        "dataset": s["dataset"],
        "limit_train": s["limit_train"],
        "epochs": int(s["epochs"]),
        "batch_size": int(s["batch_size"]),
        "optimizer": "adam",
        "lr_grid": None if grid is None else [float(v) for v in grid],
        "lr_steps": s["lr_steps"],
    }


def _records(experiment_id: str, row: dict[str, Any]):
    from initlab.store import RunRecord, StoredEpoch

    run = RunRecord(
        experiment_id=experiment_id,
        scheme=row["scheme"],
        seed=row["seed"],
        status=row["status"],
        test_acc=row["test_acc"],
        test_loss=row["test_loss"],
        train_loss=row["train_loss"],
        train_acc=row["train_acc"],
        diverged_step=row["diverged_step"] if row["status"] == "diverged" else None,
        wall_time=row["seconds"],
        extra={k: row[k] for k in ROW_EXTRA},
    )
    epochs = [
        StoredEpoch(
            experiment_id=experiment_id,
            scheme=row["scheme"],
            seed=row["seed"],
            epoch=e["epoch"],
            step=e["step"],
            train_loss=e["train_loss"],
            train_acc=e["train_acc"],
            test_loss=e["test_loss"],
            test_acc=e["test_acc"],
            wall_time=e["wall_time"],
        )
        for e in row["epochs"]
    ]
    return run, epochs


# A run's ``extra`` must be reproduced by a recomputed cell (``initlab.store.base``): no timings in it.


def row_from_record(family: str, activation: str, depth: int, run) -> dict[str, Any]:
    """The study's row of one stored run (what its tables, judge and plots use)."""
    row = {
        "family": family,
        "activation": activation,
        "scheme": run.scheme,
        "depth": depth,
        "seed": run.seed,
        "test_acc": run.test_acc,
        "test_loss": run.test_loss,
        "status": run.status,
        "seconds": run.wall_time,
    }
    row.update({k: run.extra.get(k, math.nan) for k in ROW_EXTRA})
    return row


def run_depth(
    store_path: Path,
    family: str,
    activation: str,
    depth: int,
    cells: list[tuple[str, int]],
    s: dict[str, Any],
    compute: Callable[[str, int], dict[str, Any]] | None,
    on_row: Callable[[dict[str, Any], bool], None] | None = None,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Compute the (scheme, seed) ``cells`` of one depth not yet stored, commit each, read all back.

    ``compute(scheme, seed)`` gives ``frontier_cells.run_cell``'s dict (None: compute nothing,
    return the cells already stored: renders a run still in progress); ``on_row(row, reused)``
    is told of every cell (``reused``: read from the store, not computed). Returns the experiment
    id (None when nothing is stored and nothing computed) and the rows read back from the store.
    """
    from initlab.store import config_hash, open_store

    config = experiment_config(family, activation, depth, s)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with open_store(store_path) as db:
        found = db.find_experiment(config_hash(config))
        if found is None and compute is None:
            return None, []
        experiment = found or db.create_experiment(config, name=f"depth-frontier {family} {activation} depth {depth}")
        stored = {r.cell: r for r in db.runs(experiment.id)}
    for scheme, seed in cells:
        if (scheme, seed) in stored:
            if on_row is not None:
                on_row(row_from_record(family, activation, depth, stored[(scheme, seed)]), True)
            continue
        if compute is None:
            continue
        run, epochs = _records(experiment.id, compute(scheme, seed))
        with open_store(store_path) as db:  # one short handle per commit: a kill loses one cell at most
            db.commit_runs(experiment.id, [run], epochs)
        if on_row is not None:
            on_row(row_from_record(family, activation, depth, run), False)
    with open_store(store_path) as db:
        stored = {r.cell: r for r in db.runs(experiment.id)}
        if all(cell in stored for cell in cells) and experiment.status != "finished":
            db.set_status(experiment.id, "finished")
    return experiment.id, [row_from_record(family, activation, depth, stored[cell]) for cell in cells if cell in stored]
