"""The Ray backend of ``compare``: same bits as local, worker deaths retried, committed cells
never redone, a clear message without the extra. One local Ray instance (2 CPUs) for the module;
the CLI test starts its own, before that one exists. Without ray installed only the
missing-extra tests run (they need no ray); the others skip."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from initlab.errors import UserError
from initlab.store import open_store
from initlab.sweep import compare, ray_backend  # ray_backend imports ray only when it runs
from initlab.sweep.chunks import make_chunks, steps_per_chunk
from initlab.sweep.config import CompareConfig

try:
    import ray
except ImportError:
    ray = None
NO_RAY = "ray not installed: pip install 'initlab[ray]'"


# 2 schemes x 3 seeds, 2 members per cell -> 3 cells of 2 epochs x 45 steps each.
CONFIG = CompareConfig(schemes=("he_normal", "xavier_uniform"), seeds=(0, 1, 2), epochs=2, width=16, chunk_size=2)
CLI_SETTINGS = [
    "--schemes",
    "he_normal,xavier_uniform",
    "--seeds",
    "3",
    "--epochs",
    "2",
    "--width",
    "16",
    "--chunk-size",
    "2",
]
TIMING_FIELDS = {"wall_time", "experiment_id"}  # differ between any two runs; everything else must not
HINT = "pip install 'initlab[ray]'"
SUBPROCESS_ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"OMP_NUM_THREADS": "1"}


def _bits(value):
    """Floats as their IEEE-754 bytes, so == means bit for bit (and NaN equals NaN)."""
    if isinstance(value, float):
        return struct.pack("<d", value).hex()
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_bits(v) for v in value]
    return value


def stored(path: Path) -> tuple[list[dict], list[dict]]:
    """The one experiment's runs and epochs in ``path``, timing aside, floats as bits."""
    with open_store(path) as db:
        (experiment,) = db.list_experiments()
        assert db.checkpoint_keys(experiment.id) == []  # every commit deleted its cell's checkpoint

        def strip(record):
            return _bits({k: v for k, v in dataclasses.asdict(record).items() if k not in TIMING_FIELDS})

        return [strip(r) for r in db.runs(experiment.id)], [strip(e) for e in db.epochs(experiment.id)]


def run_rows(path: Path) -> list[tuple[str, int]]:
    """Every run row in the store file, duplicates included (read with plain sqlite3)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return sorted(con.execute("select scheme, seed from runs").fetchall())


def attempts(directory: Path) -> dict[int, int]:
    """Chunk index -> how many times a task started it (one marker file per start)."""
    counts: dict[int, int] = {}
    for marker in directory.iterdir():
        index = int(marker.name.split("-")[0])
        counts[index] = counts.get(index, 0) + 1
    return counts


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The local backend's store for CONFIG: the reference every Ray result must equal."""
    path = tmp_path_factory.mktemp("local") / "local.sqlite"
    compare(CONFIG, store=path, backend="local", progress=False)
    return path


@pytest.fixture(scope="module")
def ray_instance():
    if ray is None:
        pytest.skip(NO_RAY)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset():
    from initlab.data import load

    return load(CONFIG.dataset)


# Runs first, before the module's Ray instance exists: the command starts (and stops) its own.
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.skipif(ray is None, reason=NO_RAY)
def test_cli_compare_on_ray_end_to_end(local, tmp_path):
    store = tmp_path / "cli.sqlite"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "initlab",
            "compare",
            *CLI_SETTINGS,
            "--backend",
            "ray",
            "--store",
            str(store),
            "--out",
            str(tmp_path / "report"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=SUBPROCESS_ENV,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert len(out["runs"]) == 6 and all(r["status"] == "ok" for r in out["runs"])
    assert stored(store) == stored(local)
    assert (tmp_path / "report" / "report.html").stat().st_size > 0


@pytest.mark.ray
def test_ray_results_equal_local_bit_for_bit(ray_instance, local, tmp_path):
    path = tmp_path / "ray.sqlite"
    compare(CONFIG, store=path, backend="ray", progress=False)
    ray_runs, ray_epochs = stored(path)
    local_runs, local_epochs = stored(local)
    assert len(ray_runs) == 6 and len(ray_epochs) == 6 * CONFIG.epochs
    assert ray_runs == local_runs
    assert ray_epochs == local_epochs
    assert ray.is_initialized()  # a Ray the caller started is left running


@pytest.mark.ray
def test_dead_worker_is_retried_and_every_cell_lands_once(ray_instance, local, dataset, tmp_path):
    starts, crashed = tmp_path / "starts", tmp_path / "crashed"
    starts.mkdir()

    def dies_once_in_cell_1(config, cell, data, resume_blob):
        # Runs in a Ray worker (pickled by value). Kills its own worker process, as the OOM
        # killer or a lost node would, on the first attempt at cell 1 only.
        (starts / f"{cell.index}-{os.getpid()}-{len(list(starts.iterdir()))}").touch()
        if cell.index == 1 and not crashed.exists():
            crashed.touch()
            os._exit(1)
        return ray_backend.train_chunk(config, cell, data, resume_blob)

    path = tmp_path / "kill.sqlite"
    advanced: list[int] = []
    with open_store(path) as db:
        experiment = db.create_experiment(CONFIG.to_dict())
        submitted = ray_backend.run_ray(
            db, experiment.id, CONFIG, make_chunks(CONFIG), dataset, advanced.append, chunk_task=dies_once_in_cell_1
        )
    assert crashed.exists()
    assert attempts(starts) == {0: 1, 1: 2, 2: 1}  # the dead attempt was retried once, by Ray
    assert sorted(submitted) == [0, 1, 2]  # the driver itself submitted each cell once
    assert run_rows(path) == sorted((s, k) for s in CONFIG.schemes for k in CONFIG.seeds)
    assert stored(path) == stored(local)  # the retry computed what the first attempt would have
    assert advanced == [steps_per_chunk(CONFIG, dataset.x_train.shape[0])] * 3  # one advance per finished cell


@pytest.mark.ray
def test_resume_submits_only_pending_cells_and_continues_checkpoints(ray_instance, local, tmp_path, monkeypatch):
    from initlab.sweep.runner import run_chunk

    starts = tmp_path / "starts"
    starts.mkdir()

    def counting(config, cell, data, resume_blob):
        (starts / f"{cell.index}-{'blob' if resume_blob else 'fresh'}").touch()
        return ray_backend.train_chunk(config, cell, data, resume_blob)

    monkeypatch.setattr(ray_backend, "run_ray", functools.partial(ray_backend.run_ray, chunk_task=counting))
    path = tmp_path / "resume.sqlite"
    cells = make_chunks(CONFIG)
    with open_store(local) as ref, open_store(path) as db:
        (done,) = ref.list_experiments()
        experiment = db.create_experiment(CONFIG.to_dict())
        first = cells[0].store_keys
        # Chunk 0 committed before the resume, by a driver that was then killed.
        db.commit_runs(
            experiment.id,
            [
                dataclasses.replace(r, experiment_id=experiment.id)
                for r in ref.runs(done.id)
                if (r.scheme, r.seed) in first
            ],
            [
                dataclasses.replace(e, experiment_id=experiment.id)
                for e in ref.epochs(done.id)
                if (e.scheme, e.seed) in first
            ],
        )
        # Chunk 2 left half-done by a local run: its checkpoint after epoch 1.
        from initlab.data import load

        blobs: list[tuple[int, bytes]] = []
        run_chunk(CONFIG, cells[2], load(CONFIG.dataset), on_checkpoint=lambda epoch, blob: blobs.append((epoch, blob)))
        db.save_checkpoint(experiment.id, cells[2].key, *blobs[0])
        committed_before = db.runs(experiment.id)
    data = compare(CONFIG, store=path, resume=True, backend="ray", progress=False)
    assert sorted(p.name for p in starts.iterdir()) == ["1-fresh", "2-blob"]  # cell 0 never reached Ray
    assert stored(path) == stored(local)  # the continued cell ends where the uninterrupted one did
    with open_store(path) as db:
        kept = [r for r in db.runs(data.experiment_id) if (r.scheme, r.seed) in first]
        assert kept == committed_before  # cell 0's records, wall times included, untouched
        assert db.get_experiment(data.experiment_id).status == "finished"


@pytest.mark.ray
def test_cell_error_reaches_the_caller_as_itself(ray_instance, dataset, tmp_path):
    def bad_cell(config, cell, data, resume_blob):
        raise UserError(f"cell {cell.index}: width 16 is not allowed here")

    with open_store(tmp_path / "err.sqlite") as db:
        experiment = db.create_experiment(CONFIG.to_dict())
        with pytest.raises(UserError, match=r"^cell \d: width 16 is not allowed here$"):
            ray_backend.run_ray(
                db, experiment.id, CONFIG, make_chunks(CONFIG), dataset, lambda n: None, chunk_task=bad_cell
            )
        assert db.runs(experiment.id) == []


def test_missing_extra_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when not installed
    with pytest.raises(UserError) as info:
        ray_backend.check_ray()
    message = str(info.value)
    assert HINT in message and "\n" not in message
    store = tmp_path / "never.sqlite"
    with pytest.raises(UserError, match=r"initlab\[ray\]"):
        compare(CONFIG, store=store, backend="ray", progress=False)
    assert not store.exists()  # refused before any work


def test_cli_without_ray_exits_2_with_one_line(tmp_path):
    hidden = tmp_path / "no-ray"
    hidden.mkdir()
    (hidden / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = SUBPROCESS_ENV | {"PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    store = tmp_path / "s.sqlite"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "initlab",
            "compare",
            *CLI_SETTINGS,
            "--backend",
            "ray",
            "--store",
            str(store),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and HINT in lines[0] and lines[0].startswith("initlab compare: error:")
    assert res.stdout == "" and not store.exists()


@pytest.mark.ray
def test_unreachable_address_is_refused_quickly():
    if ray is None:
        pytest.skip(NO_RAY)
    with socket.socket() as s:  # a port nothing listens on: bound, never listened
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(UserError, match=rf"address: no Ray cluster reachable at '127.0.0.1:{port}'"):
            ray_backend.check_ray(f"127.0.0.1:{port}")
    with pytest.raises(UserError, match=r"expected HOST:PORT .* got 'headnode'"):
        ray_backend.check_ray("headnode")
    ray_backend.check_ray("auto")  # Ray resolves these itself
    ray_backend.check_ray("ray://10.0.0.1:10001")
