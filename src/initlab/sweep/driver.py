"""The compare driver: schemes x (lrs x) seeds trained as chunks, committed, summarized.

config -> dataset (+ validation split) -> chunks -> backend (local or Ray) -> ``ChunkResult`` ->
store records -> store -> ``ReportData`` (stats) -> report. Data flows one way: the backends
import nothing from here. Only this driver writes the store, one transaction per finished chunk,
so a killed run loses at most the chunks in flight (and, locally, little of their finished epochs:
a chunk in flight is checkpointed at the end of an epoch as ``checkpoint_every`` says, by default
every 120 s of training).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from initlab.errors import UserError
from initlab.store.guard import writing
from initlab.sweep.chunks import MemberChunk, make_chunks, member_init, model_factory, steps_per_chunk
from initlab.sweep.config import EXECUTORS, CompareConfig
from initlab.sweep.runner import run_chunk, with_validation

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
                f"rerun with its settings, or start a new experiment without --resume"
            )
        return experiment
    experiment = store.find_experiment(config.config_hash())
    if experiment is None:
        _refuse_changed_data(store, wanted)
        known = ", ".join(e.id for e in store.list_experiments()[-5:]) or "none"
        raise UserError(
            f"--resume: no experiment in {store.location} has this config (hash {config.config_hash()[:12]}); "
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
                f"--resume: the data changed since experiment {experiment.id}: {before.get('path')} had "
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


def build_model_template(config: CompareConfig, dataset: Any):
    """The configured model, built once per compare (weights are set per member later)."""
    from initlab.engine.init import build_template

    return build_template(model_factory(config, dataset.input_shape, dataset.num_classes))


def signal_at_init(config: CompareConfig, dataset: Any, scheme: str, template: Any = None) -> list[dict]:
    """Per-layer forward/backward signal at seed 0 for one scheme, on one training batch."""
    import copy

    from initlab.diagnose import diagnose
    from initlab.engine import Member, initialize_member

    model = copy.deepcopy(template if template is not None else build_model_template(config, dataset))
    # Member and TrainConfig resolve scheme names to a Scheme on construction
    member_scheme = cast(Any, Member(member_init(scheme), 0).scheme)
    initialize_member(model, member_scheme, 0, bias_init=cast(Any, config.train_config().bias_init))
    n = min(SIGNAL_BATCH, dataset.x_train.shape[0])
    # token targets (lm) do not fit diagnose's per-sample losses: a random projection stands in
    targets = None if config.task == "lm" else dataset.y_train[:n]
    diagnosis = diagnose(model, dataset.x_train[:n], targets)

    def finite(x):
        return None if x is None or not math.isfinite(x) else float(x)

    return [
        dict(name=layer.name, out_var=finite(layer.out_var), grad_var=finite(layer.grad_var))
        for layer in diagnosis.layers
    ]


def choose_threads(config: CompareConfig, dataset: Any, template: Any = None, chunk_size: int | None = None) -> int:
    """Intra-op threads for training: 1 for small steps, every core for large ones."""
    model = template if template is not None else build_model_template(config, dataset)
    params = sum(p.numel() for p in model.parameters())
    members = min(chunk_size or config.chunk_size, len(config.members))
    flops = 6 * params * config.batch_size * members
    return 1 if flops < SMALL_STEP_FLOPS else max(1, os.cpu_count() or 1)


def preflight(config: CompareConfig, dataset: Any) -> int:
    """Checks made before the store is touched; returns the members per chunk to train.

    Every scheme draws a sample (``Scheme.sample`` refuses values absurd for float32), and for
    a built-in model the memory estimate (``initlab.engine.memory``) must fit: the chunk size
    is the largest ensemble that fits, at most ``config.chunk_size``; when even one member
    does not fit, ``UserError`` names the estimate, the limit and what to lower.
    """
    from initlab.engine import memory
    from initlab.models import architectures
    from initlab.seeding import derive_generator

    for spec in (*config.schemes, config.bias_init):
        scheme = member_init(spec)
        if not hasattr(scheme, "sample"):  # a per-layer policy: its schemes are the registry's
            continue
        # a weight, a conv kernel or a bias: whichever the scheme can fill
        shape = next((s for s in ((64, 64), (64, 16, 3, 3), (64,)) if scheme.fits(s)), None)
        if shape is not None:
            scheme.sample(shape, generator=derive_generator(0, "preflight", spec))
    if config.model not in architectures():
        return config.chunk_size
    footprint = memory.model_footprint(
        config.model,
        input_shape=dataset.input_shape,
        num_classes=dataset.num_classes,
        width=config.width,
        depth=config.depth,
        activation=config.activation,
        **config.model_options,
    )
    tensors = [
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
        getattr(dataset, "x_val", None),
        getattr(dataset, "y_val", None),
    ]
    data_bytes = sum(t.numel() * t.element_size() for t in tensors if t is not None)
    training = dict(
        batch_size=config.batch_size,
        optimizer=config.optimizer,
        momentum=config.momentum,
        eval_batch_size=min(1024, dataset.x_test.shape[0]),
        data_bytes=data_bytes,
    )
    cap = min(config.chunk_size, len(config.members))
    size = memory.members_that_fit(footprint, cap, **training)
    memory.check_fits(
        memory.training_estimate(footprint, members=size, **training),
        what="compare",
        lower="--width, --depth or --batch-size (--chunk-size is then 1)"
        if size == 1
        else "--chunk-size, --width or --batch-size",
    )
    return size


@contextlib.contextmanager
def torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def commit_chunk(store, experiment_id: str, chunk: MemberChunk, result) -> None:
    """Commit a finished chunk's records and drop its checkpoint, in one transaction."""
    runs, epochs = result.store_records(experiment_id)
    store.commit_runs(experiment_id, runs, epochs, delete_checkpoints=[chunk.key])


def run_local(
    store,
    experiment_id: str,
    config: CompareConfig,
    chunks: list[MemberChunk],
    dataset: Any,
    progress: Callable[[int], None],
    *,
    device: str | None = None,
    checkpoint_every: str | None = None,
) -> None:
    """Run pending chunks one after another in this process, on ``device``; checkpoint a chunk in
    flight as ``checkpoint_every`` says (``initlab.sweep.checkpoints``; default by time)."""
    from initlab.sweep.checkpoints import CheckpointPolicy

    policy = CheckpointPolicy.parse(checkpoint_every)
    for chunk in chunks:
        policy.start()
        saved = store.load_checkpoint(experiment_id, chunk.key)
        done_before = 0
        if saved is not None:
            done_before = saved[0] * math.ceil(dataset.x_train.shape[0] / config.batch_size)
            progress(done_before)

        def on_checkpoint(epoch: int, blob: bytes, _chunk=chunk) -> None:
            store.save_checkpoint(experiment_id, _chunk.key, epoch, blob)

        last = [done_before]

        def on_step(done: int, total: int, _last: list[int] = last) -> None:
            progress(done - _last[0])
            _last[0] = done

        result = run_chunk(
            config,
            chunk,
            dataset,
            resume_blob=saved[1] if saved else None,
            on_checkpoint=on_checkpoint,
            progress=on_step,
            device=device,
            checkpoint_due=lambda epoch: policy.due(epoch, config.epochs),
        )
        commit_chunk(store, experiment_id, chunk, result)


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
                print(
                    f"{description}: {state['done']}/{total} steps ({pct}%), {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

        yield advance
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
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
    device: str | None = None,
    checkpoint_every: str | None = None,
    **settings: Any,
):
    """Train every (scheme, lr, seed) of ``config`` and return the ``ReportData`` of the experiment.

    The training set loses a fixed, stratified validation split (``config.val_fraction``,
    ``initlab.data.split``); with ``config.lr_grid`` each scheme's lr is selected on it.

    ``settings`` build a ``CompareConfig`` when ``config`` is None (``initlab.compare(epochs=5)``).
    With ``out`` the report (Markdown, HTML, plots, CSV) is written there. ``resume=True``
    continues the stored experiment with the same config (``resume="ID"``: that experiment):
    committed cells are skipped, a cell interrupted mid-way restarts from its last epoch.
    ``threads``: torch intra-op threads for local training (None: ``choose_threads``); the
    thread count can change float rounding, so it is reported, not hashed.
    ``device``: ``auto`` (None; CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``
    for local training (Ray workers train on CPU); like threads it can change float rounding, so
    each run records it (``extra["device"]``) and the config hash leaves it out.
    ``checkpoint_every``: ``"120s"`` (default), ``"5m"``, ``"1ep"``, ``"never"``: how often a chunk in
    flight is checkpointed (``initlab.sweep.checkpoints``); results do not depend on it.
    """
    from initlab.report import write_report
    from initlab.store import open_store

    if config is None:
        config = CompareConfig(**settings)
    elif settings:
        raise UserError(f"give either a CompareConfig or settings, not both (got {sorted(settings)})")
    if backend not in EXECUTORS:
        raise UserError(f"backend must be one of {', '.join(EXECUTORS)}; got {backend!r}")
    if backend == "ray":
        from initlab.sweep.ray_backend import check_ray

        check_ray(address)
    from initlab.engine.device import resolve_device
    from initlab.sweep.checkpoints import CheckpointPolicy

    target = resolve_device(device)
    if backend == "ray" and device not in (None, "auto") and target.type != "cpu":
        raise UserError(
            f"device {device!r} applies to the local backend; Ray workers train on CPU "
            f"(leave out --device with --backend ray)"
        )
    CheckpointPolicy.parse(checkpoint_every)
    out_dir = check_writable_dir(out) if out is not None else None
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads must be an integer >= 1; got {threads!r}")
    dataset = load_dataset(config, data_dir)
    config = with_data_source(config, dataset)
    dataset = with_validation(config, dataset)
    chunk_size = preflight(config, dataset)  # before the template: refuse a model that does not fit unbuilt
    template = build_model_template(config, dataset)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    with open_store(store) as db:
        experiment = open_experiment(db, config, resume)
        # a resumed experiment keeps its chunks: the same members train together as before (one
        # stored before the chunk size was recorded used the configured one)
        chunk_size = int(experiment.extra.get("chunk_size", config.chunk_size if resume else chunk_size))
        threads = threads or choose_threads(config, dataset, template, chunk_size)
        with writing(db, experiment.id) as beat:
            if "chunk_size" not in experiment.extra:
                db.set_experiment_extra(experiment.id, "chunk_size", chunk_size)
            if "signal" not in experiment.extra:
                signal = {s: signal_at_init(config, dataset, s, template) for s in config.schemes}
                db.set_experiment_extra(experiment.id, "signal", signal)
            done = db.committed_cells(experiment.id)
            chunks = [c for c in make_chunks(config, chunk_size) if not c.store_keys <= done]
            total = steps_per_chunk(config, dataset.x_train.shape[0]) * len(chunks)
            description = f"compare {experiment.id} ({chunk_size} members per cell)"
            with _progress_bar(total, progress, description) as bar, torch_threads(threads):

                def advance(n: int) -> None:
                    bar(n)
                    beat()

                if backend == "local":
                    run_local(
                        db,
                        experiment.id,
                        config,
                        chunks,
                        dataset,
                        advance,
                        device=str(target),
                        checkpoint_every=checkpoint_every,
                    )
                else:
                    from initlab.sweep.ray_backend import run_ray

                    run_ray(db, experiment.id, config, chunks, dataset, advance, address=address)
        free, pages = db.free_pages() if hasattr(db, "free_pages") else (0, 0)
        if free > max(100, pages // 4):  # a store made before auto_vacuum: checkpoints left free pages
            db.compact()
        data = report_data(db, experiment.id)
    if out_dir is not None:
        write_report(data, out_dir)
    return data


def report_data(db, experiment_id: str):
    """``ReportData`` for a stored experiment, from the store alone (typed records all the way)."""
    from initlab.report import ReportData

    db.check()  # a damaged file gives one clear error, never wrong numbers
    experiment = db.get_experiment(experiment_id)
    return ReportData.from_records(
        experiment.id,
        experiment.config,
        db.runs(experiment.id),
        db.epochs(experiment.id),
        signal=experiment.extra.get("signal", {}),
        created=experiment.created_at,
        versions={"initlab": experiment.initlab_version, "torch": experiment.torch_version},
    )
