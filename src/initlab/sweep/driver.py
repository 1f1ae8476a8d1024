"""The compare driver: schemes x (lrs x) seeds trained as chunks, committed, summarized.

config -> dataset (+ validation split) -> chunks -> backend (local or Ray) -> ``ChunkResult`` ->
store records -> store -> ``ReportData`` (stats) -> report. Data flows one way: the backends
import nothing from here. Only this driver writes the store, one transaction per finished chunk,
so a killed run loses at most the chunks in flight (and, locally, little of their finished epochs:
a chunk in flight is checkpointed at the end of an epoch as ``checkpoint_every`` says, by default
every 120 s of training).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, cast

from initlab.errors import UserError
from initlab.store.guard import writing
from initlab.sweep.chunks import MemberChunk, build_model_template, make_chunks, member_init, steps_per_chunk
from initlab.sweep.config import EXECUTORS, CompareConfig
from initlab.sweep.experiment import load_dataset, open_experiment, with_data_source
from initlab.sweep.local import run_local, torch_threads
from initlab.sweep.preflight import SMALL_STEP_FLOPS, choose_threads, preflight
from initlab.sweep.progress import progress_bar
from initlab.sweep.runner import with_validation

DEFAULT_STORE = "runs/initlab.sqlite"
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
        raise UserError(f"out: {str(path)!r} is not a writable directory ({exc.strerror or exc})") from None
    return out


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

    config = _config_from(config, settings)
    target, out_dir = _checked_run_options(backend, address, device, checkpoint_every, out, threads)
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
            _record_setup(db, experiment, config, dataset, template, chunk_size)
            pending = _pending_chunks(db, experiment.id, config, chunk_size)
            total = steps_per_chunk(config, dataset.x_train.shape[0]) * len(pending)
            description = f"compare {experiment.id} ({chunk_size} members per cell)"
            with progress_bar(total, progress, description) as bar, torch_threads(threads):

                def advance(n: int) -> None:
                    bar(n)
                    beat()

                if backend == "local":
                    run_local(
                        db,
                        experiment.id,
                        config,
                        pending,
                        dataset,
                        advance,
                        device=str(target),
                        checkpoint_every=checkpoint_every,
                    )
                else:
                    from initlab.sweep.ray_backend import run_ray

                    run_ray(db, experiment.id, config, pending, dataset, advance, address=address)
        _reclaim_free_pages(db)
        data = report_data(db, experiment.id)
    if out_dir is not None:
        write_report(data, out_dir)
    return data


def _config_from(config: CompareConfig | None, settings: dict[str, Any]) -> CompareConfig:
    if config is None:
        return CompareConfig(**settings)
    if settings:
        raise UserError(f"give either a CompareConfig or settings, not both (got {sorted(settings)})")
    return config


def _reclaim_free_pages(db: Any) -> None:
    """Compact a store made before auto_vacuum, whose deleted checkpoints left many free pages."""
    free, pages = db.free_pages() if hasattr(db, "free_pages") else (0, 0)
    if free > max(100, pages // 4):
        db.compact()


def _record_setup(
    db: Any, experiment: Any, config: CompareConfig, dataset: Any, template: Any, chunk_size: int
) -> None:
    """Store what a resume must reuse (the chunk size) and the signal at init, once per experiment."""
    if "chunk_size" not in experiment.extra:
        db.set_experiment_extra(experiment.id, "chunk_size", chunk_size)
    if "signal" not in experiment.extra:
        signal = {s: signal_at_init(config, dataset, s, template) for s in config.schemes}
        db.set_experiment_extra(experiment.id, "signal", signal)


def _pending_chunks(db: Any, experiment_id: str, config: CompareConfig, chunk_size: int) -> list[MemberChunk]:
    """The chunks with a member not yet committed (a committed cell is never trained again)."""
    done = db.committed_cells(experiment_id)
    return [c for c in make_chunks(config, chunk_size) if not c.store_keys <= done]


def _checked_run_options(
    backend: str,
    address: str | None,
    device: str | None,
    checkpoint_every: str | None,
    out: str | os.PathLike | None,
    threads: int | None,
) -> tuple[Any, Path | None]:
    """``compare``'s options about where and how it runs, checked before any work: the torch device
    and the report folder (created, proven writable)."""
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
    return target, out_dir


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


# Importable from here as before the driver was split (the CLI, the benches and tests use them).
__all__ = [
    "DEFAULT_STORE",
    "SIGNAL_BATCH",
    "SMALL_STEP_FLOPS",
    "build_model_template",
    "check_writable_dir",
    "choose_threads",
    "compare",
    "load_dataset",
    "open_experiment",
    "preflight",
    "report_data",
    "run_local",
    "signal_at_init",
    "torch_threads",
    "with_data_source",
]
