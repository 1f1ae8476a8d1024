"""``initlab compare``: schemes x seeds trained as cells, committed to the store, summarized.

config -> cells -> backend (local or Ray) -> store -> stats -> report. Only this driver writes
the store, one transaction per finished cell, so a killed run loses at most the cells in flight
(and, locally, not even their finished epochs: each epoch leaves a checkpoint).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.sweep.cells import Cell, make_cells, member_init, model_factory, steps_per_cell
from initlab.sweep.config import BACKENDS, CompareConfig, parse_seeds
from initlab.sweep.runner import run_cell, train_config

DEFAULT_STORE = "runs/initlab.sqlite"
# Below this many FLOPs per ensemble step, a second intra-op thread costs more in
# synchronisation than it gains (measured: a 48-layer tanh MLP, 21 members, ran 1.7 s per
# epoch on one thread and ~100 s on two of a busy 2-core machine).
SMALL_STEP_FLOPS = 2e9
SIGNAL_BATCH = 256  # samples for the signal-at-init measurement


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable, before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".initlab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {str(path)!r} is not a writable directory ({exc.strerror or exc})") from None
    return out


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
                f"--resume {experiment.id}: that experiment has a different config ({_config_diff(experiment.config, wanted)}); "
                f"rerun with its settings, or start a new experiment without --resume")
        return experiment
    experiment = store.find_experiment(config.config_hash())
    if experiment is None:
        _refuse_changed_data(store, wanted)
        known = ", ".join(e.id for e in store.list_experiments()[-5:]) or "none"
        raise UserError(
            f"--resume: no experiment in {store.location} has this config (hash {config.config_hash()[:12]}); "
            f"latest experiments: {known}. Use the same settings as the run to resume, or drop --resume")
    return experiment


def _refuse_changed_data(store, wanted: dict) -> None:
    """``UserError`` when a stored experiment matches ``wanted`` in all but its data's identity."""
    rest = {k: v for k, v in wanted.items() if k != "data_source"}
    for experiment in reversed(store.list_experiments()):
        old = experiment.config
        if "data_source" in old and {k: v for k, v in old.items() if k != "data_source"} == rest:
            before, now = old["data_source"], wanted.get("data_source") or {}
            raise UserError(
                f"--resume: the data changed since experiment {experiment.id}: {before.get('path')} had "
                f"{before.get('size')} bytes, sha256 {str(before.get('sha256'))[:12]}; now {now.get('size')} bytes, "
                f"sha256 {str(now.get('sha256'))[:12]}. Restore the file, or start a new experiment without --resume")


def with_data_source(config: CompareConfig, dataset: Any) -> CompareConfig:
    """``config`` with the identity of ``dataset``'s source; ``UserError`` if it names other data."""
    import dataclasses

    source = dict(dataset.spec.get("source") or {}) or None
    if config.data_source is not None and config.data_source != source:
        before, now = config.data_source, source or {}
        raise UserError(f"the data changed: the config names {before.get('path')} with sha256 "
                        f"{str(before.get('sha256'))[:12]}, the file now has sha256 {str(now.get('sha256'))[:12]}")
    if dataset.task != config.task:
        raise UserError(f"dataset {config.dataset!r} is {dataset.task} data; the config's task is {config.task}")
    if config.task == "regression" and dataset.num_classes != 1:
        raise UserError(f"dataset {config.dataset!r} has {dataset.num_classes} regression targets; compare reports the "
                        f"MSE of one target in its own units: keep one target column")
    return dataclasses.replace(config, data_source=source)


def load_dataset(config: CompareConfig, data_dir: str | None = None):
    """The configured dataset, read as ``config.task`` needs it."""
    from initlab.data import load

    options = dict(config.data_options)
    if config.task != "classification":
        options["task"] = config.task
    return load(config.dataset, data_dir=data_dir, **options)


def signal_at_init(config: CompareConfig, dataset: Any, scheme: str) -> list[dict]:
    """Per-layer forward/backward signal at seed 0 for one scheme, on one training batch."""
    from initlab.diagnose import diagnose
    from initlab.engine import Member, initialize_member
    from initlab.engine.init import build_template

    model = build_template(model_factory(config, dataset.input_shape, dataset.num_classes))
    initialize_member(model, Member(member_init(scheme), 0).scheme, 0, bias_init=train_config(config).bias_init)
    n = min(SIGNAL_BATCH, dataset.x_train.shape[0])
    # token targets (lm) do not fit diagnose's per-sample losses: a random projection stands in
    targets = None if config.task == "lm" else dataset.y_train[:n]
    diagnosis = diagnose(model, dataset.x_train[:n], targets)

    def finite(x):
        return None if x is None or not math.isfinite(x) else float(x)

    return [dict(name=l.name, out_var=finite(l.out_var), grad_var=finite(l.grad_var)) for l in diagnosis.layers]


def choose_threads(config: CompareConfig, dataset: Any) -> int:
    """Intra-op threads for training: 1 for small steps, every core for large ones."""
    from initlab.engine.init import build_template

    model = build_template(model_factory(config, dataset.input_shape, dataset.num_classes))
    params = sum(p.numel() for p in model.parameters())
    members = min(config.chunk_size, len(config.members))
    flops = 6 * params * config.batch_size * members
    return 1 if flops < SMALL_STEP_FLOPS else max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _records(store, experiment_id: str, result: dict):
    from initlab.store import EpochRecord, RunRecord

    runs = [RunRecord(experiment_id=experiment_id, **r) for r in result["runs"]]
    epochs = [EpochRecord(experiment_id=experiment_id, **e) for e in result["epochs"]]
    return runs, epochs


def run_local(store, experiment_id: str, config: CompareConfig, cells: list[Cell], dataset: Any,
              progress: Callable[[int], None]) -> None:
    """Run pending cells one after another in this process; checkpoint every epoch."""
    for cell in cells:
        saved = store.load_checkpoint(experiment_id, cell.key)
        done_before = 0
        if saved is not None:
            done_before = saved[0] * math.ceil(dataset.x_train.shape[0] / config.batch_size)
            progress(done_before)

        def on_checkpoint(epoch: int, blob: bytes, _cell=cell) -> None:
            store.save_checkpoint(experiment_id, _cell.key, epoch, blob)

        last = [done_before]

        def on_step(done: int, total: int) -> None:
            progress(done - last[0])
            last[0] = done

        result = run_cell(config, cell, dataset, resume_blob=saved[1] if saved else None,
                          on_checkpoint=on_checkpoint, progress=on_step)
        runs, epochs = _records(store, experiment_id, result)
        store.commit_runs(experiment_id, runs, epochs, delete_checkpoints=[cell.key])


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool, description: str):
    """A rich progress bar with ETA on a terminal; plain lines (every ~5%) in a log file."""
    if not enabled:
        yield lambda n: None
        return
    import sys
    import time

    if not sys.stderr.isatty():
        start, state = time.perf_counter(), {"done": 0, "shown": -1}

        def advance(n: int) -> None:
            state["done"] += n
            pct = int(100 * state["done"] / max(total, 1))
            if pct // 5 != state["shown"] // 5 or state["done"] >= total:
                state["shown"] = pct
                elapsed = time.perf_counter() - start
                eta = elapsed / state["done"] * (total - state["done"]) if state["done"] else float("nan")
                print(f"{description}: {state['done']}/{total} steps ({pct}%), {elapsed:.0f} s elapsed, "
                      f"ETA {eta:.0f} s", file=sys.stderr, flush=True)

        yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def compare(
    config: CompareConfig | None = None,
    *,
    store: str | os.PathLike = DEFAULT_STORE,
    out: str | os.PathLike | None = None,
    resume: bool | str = False,
    backend: str = "local",
    address: str | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    threads: int | None = None,
    **settings: Any,
):
    """Train every (scheme, seed) of ``config`` and return the ``ReportData`` of the experiment.

    ``settings`` build a ``CompareConfig`` when ``config`` is None (``initlab.compare(epochs=5)``).
    With ``out`` the report (Markdown, HTML, plots, CSV) is written there. ``resume=True``
    continues the stored experiment with the same config (``resume="ID"``: that experiment):
    committed cells are skipped, a cell interrupted mid-way restarts from its last epoch.
    ``threads``: torch intra-op threads for local training (None: ``choose_threads``); the
    thread count can change float rounding, so it is reported, not hashed.
    """
    from initlab.report import write_report
    from initlab.store import open_store

    if config is None:
        config = CompareConfig(**settings)
    elif settings:
        raise UserError(f"give either a CompareConfig or settings, not both (got {sorted(settings)})")
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "ray":
        from initlab.sweep.ray_backend import check_ray

        check_ray(address)
    out_dir = check_writable_dir(out) if out is not None else None
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads must be an integer >= 1; got {threads!r}")
    dataset = load_dataset(config, data_dir)
    config = with_data_source(config, dataset)
    threads = threads or choose_threads(config, dataset)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    with open_store(store) as db:
        experiment = open_experiment(db, config, resume)
        try:
            if "signal" not in experiment.extra:
                signal = {s: signal_at_init(config, dataset, s) for s in config.schemes}
                db.set_experiment_extra(experiment.id, "signal", signal)
            done = db.committed_cells(experiment.id)
            cells = [c for c in make_cells(config) if not set(c.members) <= done]
            total = steps_per_cell(config, dataset.x_train.shape[0]) * len(cells)
            db.set_status(experiment.id, "running")
            with _progress_bar(total, progress, f"compare {experiment.id}") as advance, torch_threads(threads):
                if backend == "local":
                    run_local(db, experiment.id, config, cells, dataset, advance)
                else:
                    from initlab.sweep.ray_backend import run_ray

                    run_ray(db, experiment.id, config, cells, dataset, advance, address=address)
            db.set_status(experiment.id, "finished")
        except BaseException:
            with contextlib.suppress(Exception):
                db.set_status(experiment.id, "interrupted")
            raise
        data = report_data(db, experiment.id)
    if out_dir is not None:
        write_report(data, out_dir)
    return data


def report_data(db, experiment_id: str):
    """``ReportData`` for a stored experiment, from the store alone."""
    from dataclasses import asdict

    from initlab.report import ReportData

    experiment = db.get_experiment(experiment_id)
    runs = [asdict(r) for r in db.runs(experiment.id)]
    epochs = [asdict(e) for e in db.epochs(experiment.id)]
    return ReportData.from_records(
        experiment.id, experiment.config, runs, epochs, signal=experiment.extra.get("signal", {}),
        created=experiment.created_at,
        versions={"initlab": experiment.initlab_version, "torch": experiment.torch_version},
    )


__all__ = ["CompareConfig", "compare", "parse_seeds", "report_data", "DEFAULT_STORE"]
