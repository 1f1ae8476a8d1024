"""Conformance suite for the results store (initlab.store.base lists the invariants).

The first part runs against every implementation (``IMPLEMENTATIONS``); the second covers what
only a file can do: creation, schema versions, foreign files, failures inside a transaction,
readers in other connections and a writer killed with SIGKILL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from initlab.errors import UserError
from initlab.store import (
    SCHEMA_VERSION,
    ConflictError,
    MemoryStore,
    RunRecord,
    Store,
    StoredEpoch,
    canonical_json,
    config_hash,
    current_versions,
    open_store,
)

IMPLEMENTATIONS = ("sqlite", "memory")
N_EPOCHS = 3


# --- records with deterministic, distinguishable values ---------------------------------------


def make_run(eid: str, scheme: str, seed: int, **changes) -> RunRecord:
    base = 0.5 + 0.01 * seed + 0.001 * len(scheme)
    run = RunRecord(
        experiment_id=eid,
        scheme=scheme,
        seed=seed,
        status="ok",
        test_acc=base,
        test_loss=1 - base,
        train_loss=0.9 - base,
        train_acc=base + 0.05,
        wall_time=1.5,
        extra={"member": f"{scheme}/{seed}"},
    )
    return dataclasses.replace(run, **changes)


def make_epochs(eid: str, scheme: str, seed: int, n_epochs: int = N_EPOCHS) -> list[StoredEpoch]:
    return [
        StoredEpoch(
            experiment_id=eid,
            scheme=scheme,
            seed=seed,
            epoch=e,
            step=10 * e,
            train_loss=1.0 / (e + 1 + seed),
            train_acc=e / (n_epochs + 1),
            test_loss=1.1 / (e + 1 + seed),
            test_acc=e / (n_epochs + 2),
            wall_time=0.5 * e,
        )
        for e in range(1, n_epochs + 1)
    ]


def make_chunk(eid: str, cells, n_epochs: int = N_EPOCHS) -> tuple[list[RunRecord], list[StoredEpoch]]:
    runs = [make_run(eid, s, n) for s, n in cells]
    epochs = [e for s, n in cells for e in make_epochs(eid, s, n, n_epochs)]
    return runs, epochs


# --- fixtures: a store, and a factory for a second handle on the same store --------------------


@pytest.fixture(params=IMPLEMENTATIONS)
def make_store(request, tmp_path):
    """``make_store()`` opens another handle on one store (a second connection for SQLite)."""
    if request.param == "memory":
        shared = MemoryStore()
        yield lambda: shared
        return
    handles: list[Store] = []

    def make() -> Store:
        handles.append(open_store(tmp_path / "nested" / "dir" / "initlab.db"))
        return handles[-1]

    yield make
    for handle in handles:
        handle.close()


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


@pytest.fixture
def fixed_ids(monkeypatch):
    """Experiment ids drawn from a given list, to build look-alike ids."""
    ids: list[str] = []

    def next_id(digest, taken):
        return ids.pop(0)

    monkeypatch.setattr("initlab.store.sqlite.new_experiment_id", next_id)
    monkeypatch.setattr("initlab.store.memory.new_experiment_id", next_id)
    return ids


# === conformance: every implementation ===========================================================


def test_experiment_records_config_hash_and_provenance(store):
    config = {"schemes": ("he_normal", "zeros"), "lr": 0.1, "dataset": "digits", "nested": {"b": 1, "a": 2}}
    exp = store.create_experiment(config, name="first")
    assert exp.config == {"schemes": ["he_normal", "zeros"], "lr": 0.1, "dataset": "digits", "nested": {"a": 2, "b": 1}}
    expected_text = '{"dataset":"digits","lr":0.1,"nested":{"a":2,"b":1},"schemes":["he_normal","zeros"]}'
    assert exp.config_hash == hashlib.sha256(expected_text.encode()).hexdigest() == config_hash(config)
    assert config_hash(dict(reversed(list(config.items())))) == exp.config_hash  # key order is irrelevant
    assert config_hash({**config, "lr": 0.2}) != exp.config_hash
    assert (exp.name, exp.status, exp.extra) == ("first", "running", {})
    versions = current_versions()
    assert (exp.initlab_version, exp.torch_version, exp.python_version) == (
        versions["initlab"],
        versions["torch"],
        versions["python"],
    )
    created = datetime.fromisoformat(exp.created_at)
    assert created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 600
    assert store.get_experiment(exp.id) == exp
    with pytest.raises(UserError, match="config must be plain JSON"):
        store.create_experiment({"model": object()})
    with pytest.raises(UserError, match="config must be a dict"):
        store.create_experiment(["not", "a", "dict"])


def test_list_in_creation_order_and_find_returns_the_latest_with_that_config(store):
    a = store.create_experiment({"k": 1})
    b = store.create_experiment({"k": 2})
    c = store.create_experiment({"k": 1})
    assert a.id != c.id
    assert [e.id for e in store.list_experiments()] == [a.id, b.id, c.id]
    assert store.find_experiment(config_hash({"k": 1})) == c
    assert store.find_experiment(config_hash({"k": 2})) == b
    assert store.find_experiment(config_hash({"k": 3})) is None


def test_get_experiment_resolves_prefixes_and_names_nearby_ids(store, fixed_ids):
    with pytest.raises(UserError, match="holds no experiments"):
        store.get_experiment("abcd0001")
    fixed_ids += ["abcd0001", "abcd0002", "ffff0000"]
    first, second, _ = (store.create_experiment({"k": i}) for i in range(3))
    assert store.get_experiment("abcd0001") == first
    with pytest.raises(UserError, match="ambiguous.*abcd0001, abcd0002"):
        store.get_experiment("abcd")
    assert store.get_experiment("ffff").id == "ffff0000"
    with pytest.raises(UserError, match=r"unknown experiment 'abcd0003'.*Did you mean.*abcd000") as info:
        store.get_experiment("abcd0003")
    assert "\n" not in str(info.value)  # the CLI shows one line
    with pytest.raises(UserError, match="unknown experiment"):
        store.runs("abc")  # prefixes are for get_experiment only
    assert second.id == "abcd0002"


def test_status_and_extra_are_the_mutable_metadata(store):
    exp = store.create_experiment({"k": 1})
    for status in ("interrupted", "running", "finished"):
        store.set_status(exp.id, status)
        assert store.get_experiment(exp.id).status == status
    with pytest.raises(UserError, match=r"'done' is invalid; allowed: running, finished, interrupted"):
        store.set_status(exp.id, "done")
    assert store.get_experiment(exp.id).status == "finished"
    signal_at_init = {"he_normal": {"act_rms": [1.0, 0.98, math.nan], "grad_rms": [math.inf, 1e-300]}}
    store.set_experiment_extra(exp.id, "signal", signal_at_init)
    store.set_experiment_extra(exp.id, "note", "first")
    store.set_experiment_extra(exp.id, "note", "second")  # metadata may be overwritten
    extra = store.get_experiment(exp.id).extra
    assert canonical_json(extra["signal"], allow_nan=True) == canonical_json(signal_at_init, allow_nan=True)
    assert math.isnan(extra["signal"]["he_normal"]["act_rms"][2])
    assert extra["note"] == "second"
    with pytest.raises(UserError, match="plain JSON"):
        store.set_experiment_extra(exp.id, "bad", {1, 2})
    with pytest.raises(UserError, match="unknown experiment"):
        store.set_status("nope0000", "finished")
    with pytest.raises(UserError, match="unknown experiment"):
        store.set_experiment_extra("nope0000", "k", 1)


def test_reads_are_ordered_whatever_the_commit_order(store):
    exp = store.create_experiment({"k": 1})
    chunks = [[("zeros", 1), ("he_normal", 10)], [("he_normal", 2), ("zeros", 0)], [("he_normal", 9)]]
    for cells in chunks:
        assert store.commit_runs(exp.id, *make_chunk(exp.id, cells)) == len(cells)
    cells = sorted(c for chunk in chunks for c in chunk)
    assert [r.cell for r in store.runs(exp.id)] == cells  # seed 9 before 10: numeric, not text
    assert [(e.scheme, e.seed, e.epoch) for e in store.epochs(exp.id)] == [
        (s, n, e) for s, n in cells for e in range(1, N_EPOCHS + 1)
    ]
    assert store.runs(exp.id) == make_chunk(exp.id, cells)[0]
    assert store.epochs(exp.id) == make_chunk(exp.id, cells)[1]
    assert store.committed_cells(exp.id) == set(cells)
    other = store.create_experiment({"k": 2})
    assert store.runs(other.id) == [] and store.committed_cells(other.id) == set()


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_nan_inf_and_exact_floats_round_trip(store):
    exp = store.create_experiment({"k": 1})
    run = RunRecord(
        experiment_id=exp.id,
        scheme="random_normal",
        seed=3,
        status="diverged",
        test_acc=math.nan,
        test_loss=math.inf,
        train_loss=-math.inf,
        train_acc=5e-324,
        diverged_step=17,
        wall_time=0.1 + 0.2,
        extra={"loss_at_divergence": math.inf, "history": [math.nan, -0.0, 1e308]},
    )
    epoch = StoredEpoch(
        experiment_id=exp.id,
        scheme="random_normal",
        seed=3,
        epoch=0,
        step=0,
        train_loss=math.nan,
        train_acc=1.0,
        test_loss=math.inf,
        test_acc=0.0,
        wall_time=math.nan,
    )
    store.commit_runs(exp.id, [run], [epoch])
    (back,), (back_epoch,) = store.runs(exp.id), store.epochs(exp.id)
    assert back == run and back_epoch == epoch
    assert math.isnan(back.test_acc) and back.test_loss == math.inf and back.train_loss == -math.inf
    assert _bits(back.train_acc) == _bits(5e-324) and _bits(back.wall_time) == _bits(0.1 + 0.2)
    assert (back.status, back.diverged_step) == ("diverged", 17)
    assert math.isnan(back.extra["history"][0]) and back.extra["loss_at_divergence"] == math.inf
    assert math.isnan(back_epoch.train_loss) and math.isnan(back_epoch.wall_time) and back_epoch.test_loss == math.inf
    assert store.commit_runs(exp.id, [run], [epoch]) == 0  # NaN equals NaN: same result, no conflict


def test_committed_records_never_change(store):
    exp = store.create_experiment({"k": 1})
    runs, epochs = make_chunk(exp.id, [("he_normal", 0), ("zeros", 0)])
    assert store.commit_runs(exp.id, runs, epochs) == 2
    before = (store.runs(exp.id), store.epochs(exp.id))
    assert store.commit_runs(exp.id, runs, epochs) == 0  # identical: no-op
    retimed = [dataclasses.replace(r, wall_time=99.0) for r in runs]
    retimed_epochs = [dataclasses.replace(e, wall_time=e.wall_time + 7) for e in epochs]
    assert store.commit_runs(exp.id, retimed, retimed_epochs) == 0  # same result, other timing
    assert (store.runs(exp.id), store.epochs(exp.id)) == before  # the first timing is kept
    assert store.runs(exp.id)[0].wall_time == 1.5
    he_epochs = [e for e in epochs if e.scheme == "he_normal"]
    changed = {
        "test_acc": ([dataclasses.replace(runs[0], test_acc=0.1)], he_epochs),
        "status": ([dataclasses.replace(runs[0], status="diverged", diverged_step=3)], he_epochs),
        "extra": ([dataclasses.replace(runs[0], extra={"member": "other"})], he_epochs),
        "epochs": ([runs[0]], he_epochs[:-1]),
        "train_loss": ([runs[0]], [*he_epochs[:-1], dataclasses.replace(he_epochs[-1], train_loss=0.0)]),
    }
    for field_name, (new_runs, new_epochs) in changed.items():
        with pytest.raises(ConflictError, match=rf"cell \('he_normal', 0\).*{field_name}.*never change"):
            store.commit_runs(exp.id, new_runs, new_epochs)
    assert (store.runs(exp.id), store.epochs(exp.id)) == before


def test_a_failing_chunk_writes_nothing_and_keeps_its_checkpoint(make_store):
    store, reader = make_store(), make_store()
    exp = store.create_experiment({"k": 1})
    store.commit_runs(exp.id, *make_chunk(exp.id, [("zeros", 0)]))
    store.save_checkpoint(exp.id, "chunk-1", 2, b"state after epoch 2")
    fresh_runs, fresh_epochs = make_chunk(exp.id, [("he_normal", 0), ("he_normal", 1)])
    # The conflicting cell comes last, after the fresh ones have been handled.
    clash = dataclasses.replace(make_run(exp.id, "zeros", 0), test_acc=0.0)
    with pytest.raises(ConflictError):
        store.commit_runs(
            exp.id,
            [*fresh_runs, clash],
            [*fresh_epochs, *make_epochs(exp.id, "zeros", 0)],
            delete_checkpoints=["chunk-1"],
        )
    for handle in (store, reader):
        assert handle.committed_cells(exp.id) == {("zeros", 0)}
        assert {e.cell for e in handle.epochs(exp.id)} == {("zeros", 0)}
        assert handle.load_checkpoint(exp.id, "chunk-1") == (2, b"state after epoch 2")
    assert store.commit_runs(exp.id, fresh_runs, fresh_epochs, delete_checkpoints=["chunk-1"]) == 2
    assert reader.committed_cells(exp.id) == {("zeros", 0), ("he_normal", 0), ("he_normal", 1)}
    assert reader.load_checkpoint(exp.id, "chunk-1") is None


def test_bad_chunks_are_refused_before_anything_is_written(store):
    exp = store.create_experiment({"k": 1})
    other = store.create_experiment({"k": 2})
    runs, epochs = make_chunk(exp.id, [("he_normal", 0), ("he_normal", 1)])
    bad = {
        "belongs to experiment": (exp.id, [*runs, make_run(other.id, "zeros", 0)], epochs),
        "epoch .* belongs to experiment": (exp.id, runs, [*epochs, *make_epochs(other.id, "he_normal", 0)]),
        r"cell \('zeros', 5\) has no run in this chunk": (exp.id, runs, [*epochs, *make_epochs(exp.id, "zeros", 5)]),
        "appears twice": (exp.id, [*runs, runs[0]], epochs),
        "epoch 1 of cell .* appears twice": (exp.id, runs, [*epochs, epochs[0]]),
        "runs must be RunRecord": (exp.id, [*runs, {"scheme": "zeros"}], epochs),
        "unknown experiment": ("nope0000", [], []),
    }
    for message, (eid, chunk_runs, chunk_epochs) in bad.items():
        with pytest.raises(UserError, match=message):
            store.commit_runs(eid, chunk_runs, chunk_epochs)
    with pytest.raises(UserError, match="checkpoint key must be a non-empty string"):
        store.commit_runs(exp.id, runs, epochs, delete_checkpoints=[""])
    assert store.committed_cells(exp.id) == set() and store.epochs(exp.id) == []


def test_records_validate_and_are_frozen():
    run = make_run("e1", "he_normal", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.test_acc = 0.9
    assert RunRecord(**{**run.__dict__, "test_acc": np.float32(0.25), "seed": np.int64(4)}).seed == 4
    assert type(RunRecord(**{**run.__dict__, "test_acc": np.float32(0.25)}).test_acc) is float
    invalid = {
        r"test_acc must be a fraction in \[0, 1\] or NaN; got 95.0": {"test_acc": 95.0},
        r"train_acc must be a fraction .* got inf": {"train_acc": math.inf},
        "status 'lost' is invalid; allowed: ok, diverged": {"status": "lost"},
        "status 'diverged' needs diverged_step": {"status": "diverged"},
        "status 'ok' needs diverged_step=None": {"diverged_step": 4},
        r"seed must be an integer in \[0, 2\*\*63-1\]; got -1": {"seed": -1},
        "seed must be an integer; got True": {"seed": True},
        "seed must be an integer; got 1.5": {"seed": 1.5},
        "test_loss must be a float .* got None": {"test_loss": None},
        "test_loss must be a float .* got '0.1'": {"test_loss": "0.1"},
        "scheme must be a non-empty string": {"scheme": ""},
        "extra keys must be strings; got 1": {"extra": {1: "x"}},
    }
    for message, change in invalid.items():
        with pytest.raises(UserError, match=message):
            RunRecord(**{**run.__dict__, **change})
    epoch = make_epochs("e1", "he_normal", 0)[0]
    with pytest.raises(UserError, match=r"epoch must be an integer in \[0"):
        StoredEpoch(**{**epoch.__dict__, "epoch": -1})
    with pytest.raises(UserError, match="test_acc must be a fraction"):
        StoredEpoch(**{**epoch.__dict__, "test_acc": 1.5})
    # NaN equals NaN, so a record equals its copy and hashes alike.
    nan_run = dataclasses.replace(run, test_loss=math.nan)
    assert nan_run == dataclasses.replace(run, test_loss=float("nan"))
    assert len({nan_run, dataclasses.replace(nan_run)}) == 1
    assert nan_run != run


def test_checkpoints_replace_atomically_and_stay_per_experiment(store):
    exp, other = store.create_experiment({"k": 1}), store.create_experiment({"k": 2})
    assert store.load_checkpoint(exp.id, "chunk-0") is None
    store.save_checkpoint(exp.id, "chunk-0", 1, b"one")
    store.save_checkpoint(exp.id, "chunk-0", 2, bytearray(b"two"))
    store.save_checkpoint(exp.id, "chunk-1", 1, b"\x00" * 1000)
    store.save_checkpoint(other.id, "chunk-0", 7, b"other")
    assert store.load_checkpoint(exp.id, "chunk-0") == (2, b"two")
    assert store.load_checkpoint(other.id, "chunk-0") == (7, b"other")
    assert store.checkpoint_keys(exp.id) == ["chunk-0", "chunk-1"]
    assert store.delete_checkpoint(exp.id, "chunk-0") is True
    assert store.delete_checkpoint(exp.id, "chunk-0") is False
    assert store.checkpoint_keys(exp.id) == ["chunk-1"] and store.checkpoint_keys(other.id) == ["chunk-0"]
    with pytest.raises(UserError, match="epoch must be an integer >= 0; got -1"):
        store.save_checkpoint(exp.id, "k", -1, b"")
    with pytest.raises(UserError, match="blob must be bytes; got str"):
        store.save_checkpoint(exp.id, "k", 1, "text")
    with pytest.raises(UserError, match="unknown experiment"):
        store.save_checkpoint("nope0000", "k", 1, b"")


class Killed(Exception):
    """Stands for a SIGKILL of the driver in the resume protocol below."""


def drive(store: Store, eid: str, chunks, n_epochs: int, *, kill_after_epochs: int | None = None) -> int:
    """The resume protocol a driver follows; returns the chunk-epochs it trained.

    Skip committed chunks; continue a chunk from its checkpoint (saved after every epoch);
    commit a finished chunk together with the deletion of its checkpoint. Each "member" is a
    recurrence acc <- acc + rate * (1 - acc), so a resume from the wrong state shows.
    """
    trained = 0
    done = store.committed_cells(eid)
    for index, cells in enumerate(chunks):
        if set(cells) <= done:
            continue
        key = f"chunk-{index}"
        saved = store.load_checkpoint(eid, key)
        start, history = (0, {f"{s}/{n}": [] for s, n in cells}) if saved is None else (saved[0], json.loads(saved[1]))
        for epoch in range(start + 1, n_epochs + 1):
            for s, n in cells:
                acc = history[f"{s}/{n}"][-1] if history[f"{s}/{n}"] else 0.1
                history[f"{s}/{n}"].append(acc + (0.1 + 0.01 * n + 0.001 * len(s)) * (1 - acc))
            store.save_checkpoint(eid, key, epoch, json.dumps(history).encode())
            trained += 1
            if kill_after_epochs is not None and trained == kill_after_epochs:
                raise Killed
        runs, epochs = [], []
        for s, n in cells:
            accs = history[f"{s}/{n}"]
            runs.append(make_run(eid, s, n, test_acc=accs[-1], train_acc=accs[-1]))
            epochs += [
                StoredEpoch(
                    experiment_id=eid,
                    scheme=s,
                    seed=n,
                    epoch=e,
                    step=5 * e,
                    train_loss=1 - a,
                    train_acc=a,
                    test_loss=1 - a,
                    test_acc=a,
                    wall_time=float(e),
                )
                for e, a in enumerate(accs, start=1)
            ]
        store.commit_runs(eid, runs, epochs, delete_checkpoints=[key])
    return trained


def _as_experiment(records, eid):
    return [dataclasses.replace(r, experiment_id=eid) for r in records]


def test_resume_reproduces_the_uninterrupted_run_and_is_idempotent(store):
    config = {"schemes": ["he_normal", "zeros"], "seeds": 3}
    chunks = [[("he_normal", 0), ("zeros", 0)], [("he_normal", 1), ("zeros", 1)], [("he_normal", 2), ("zeros", 2)]]
    n_epochs = 3
    reference = store.create_experiment(config)
    assert drive(store, reference.id, chunks, n_epochs) == 9
    exp = store.create_experiment(config)
    assert store.find_experiment(config_hash(config)).id == exp.id
    with pytest.raises(Killed):  # dies after chunk 0 and two epochs of chunk 1
        drive(store, exp.id, chunks, n_epochs, kill_after_epochs=5)
    assert store.committed_cells(exp.id) == set(chunks[0])
    assert store.load_checkpoint(exp.id, "chunk-1")[0] == 2
    with pytest.raises(Killed):  # resumes chunk 1 at epoch 3, commits it, dies inside chunk 2
        drive(store, exp.id, chunks, n_epochs, kill_after_epochs=2)
    assert store.committed_cells(exp.id) == set(chunks[0] + chunks[1])
    assert store.checkpoint_keys(exp.id) == ["chunk-2"]
    assert drive(store, exp.id, chunks, n_epochs) == 2  # the two epochs chunk 2 still lacked
    final = (store.runs(exp.id), store.epochs(exp.id))
    assert final[0] == _as_experiment(store.runs(reference.id), exp.id)
    assert final[1] == _as_experiment(store.epochs(reference.id), exp.id)
    assert store.checkpoint_keys(exp.id) == []
    assert drive(store, exp.id, chunks, n_epochs) == 0  # resume after the end: nothing to do
    for cells in chunks:  # a chunk delivered twice (say, a retried Ray task) is a no-op
        runs = [r for r in final[0] if r.cell in cells]
        assert store.commit_runs(exp.id, runs, [e for e in final[1] if e.cell in cells]) == 0
    assert (store.runs(exp.id), store.epochs(exp.id)) == final


def test_concurrent_reader_sees_only_whole_chunks(make_store):
    writer, reader = make_store(), make_store()
    exp = writer.create_experiment({"k": "concurrent"})
    chunk_size, n_chunks = 4, 20
    chunks = [[(f"scheme{c:02d}", seed) for seed in range(chunk_size)] for c in range(n_chunks)]
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for cells in chunks:
                writer.commit_runs(exp.id, *make_chunk(exp.id, cells))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    while True:
        finished = not thread.is_alive()
        runs = reader.runs(exp.id)
        epochs = reader.epochs(exp.id)  # read after runs: holds at least those runs' epochs
        assert all(n == chunk_size for n in Counter(r.scheme for r in runs).values())
        assert all(n == chunk_size * N_EPOCHS for n in Counter(e.scheme for e in epochs).values())
        assert {r.cell for r in runs} <= {e.cell for e in epochs}
        if finished:
            break
    thread.join()
    assert not failures
    assert len(reader.runs(exp.id)) == chunk_size * n_chunks


# === SQLite only: the file ======================================================================


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_open_store_creates_a_wal_file_with_a_schema_version_and_persists(tmp_path):
    path = tmp_path / "a" / "b" / "initlab.db"
    with open_store(path) as store:
        exp = store.create_experiment({"k": 1})
        store.commit_runs(exp.id, *make_chunk(exp.id, [("he_normal", 0)]))
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    meta = dict(raw.execute("SELECT key, value FROM meta"))
    assert meta == {"application": "initlab", "schema_version": str(SCHEMA_VERSION)}
    raw.close()
    with open_store(path, create=False) as again:
        assert again.runs(exp.id) == make_chunk(exp.id, [("he_normal", 0)])[0]
    empty = tmp_path / "empty.db"
    empty.touch()  # a zero-byte file is an empty database: it becomes a store
    with open_store(empty) as store:
        assert store.list_experiments() == []
    with pytest.raises(UserError, match="no initlab store at"):
        open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(UserError, match="is a directory"):
        open_store(tmp_path / "a")


def test_a_newer_schema_is_refused_and_the_file_left_untouched(tmp_path):
    path = tmp_path / "initlab.db"
    with open_store(path) as store:
        store.create_experiment({"k": 1})
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    raw.commit()
    raw.close()
    before, mtime = _files(tmp_path), path.stat().st_mtime_ns
    expected = (
        f"store {path} was written by schema {SCHEMA_VERSION + 1}, "
        f"this initlab reads <= {SCHEMA_VERSION}; upgrade initlab"
    )
    with pytest.raises(UserError, match=re.escape(expected)):
        open_store(path)
    assert _files(tmp_path) == before and path.stat().st_mtime_ns == mtime  # no -wal/-shm left either


def test_files_that_are_not_stores_are_refused_and_left_untouched(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("results: he_normal 0.97\n" * 10)
    foreign = tmp_path / "foreign.db"
    raw = sqlite3.connect(foreign)
    raw.execute("CREATE TABLE trials (id INTEGER)")
    raw.commit()
    raw.close()
    stranger = tmp_path / "stranger.db"
    raw = sqlite3.connect(stranger)
    raw.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    raw.execute("INSERT INTO meta VALUES ('application', 'optuna')")
    raw.commit()
    raw.close()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(foreign.read_bytes()[:200])
    before = _files(tmp_path)
    cases = {
        text: "not an SQLite database",
        foreign: "an SQLite database with tables trials",
        stranger: "names application 'optuna'",
        truncated: "SQLite says",
    }
    for path, why in cases.items():
        with pytest.raises(UserError, match=rf"is not an initlab store \(.*{why}"):
            open_store(path)
    assert _files(tmp_path) == before


def test_the_database_itself_refuses_to_change_committed_rows(tmp_path):
    path = tmp_path / "initlab.db"
    with open_store(path) as store:
        exp = store.create_experiment({"k": 1})
        store.commit_runs(exp.id, *make_chunk(exp.id, [("he_normal", 0)]))
    raw = sqlite3.connect(path)
    for sql in (
        "UPDATE runs SET test_acc = 1.0",
        "DELETE FROM runs",
        "UPDATE epochs SET test_acc = 1.0",
        "DELETE FROM epochs",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="committed (runs|epochs) records never change"):
            raw.execute(sql)
    raw.close()


def _trigger(store, name: str, table: str, when: str, action: str, event: str = "AFTER INSERT") -> None:
    """A TEMP trigger on the store's own connection: runs inside its write transactions."""
    store._conn.execute(f"CREATE TEMP TRIGGER {name} {event} ON main.{table} WHEN {when} BEGIN {action}; END")


def test_a_failure_inside_the_transaction_leaves_nothing(tmp_path):
    store = open_store(tmp_path / "initlab.db")
    exp = store.create_experiment({"k": 1})
    store.save_checkpoint(exp.id, "chunk-0", 3, b"state")
    # Fails on the second cell's epochs, after the first cell's rows were inserted.
    _trigger(store, "boom", "epochs", "NEW.scheme = 'zeros'", "SELECT RAISE(ABORT, 'injected failure')")
    runs, epochs = make_chunk(exp.id, [("he_normal", 0), ("zeros", 0)])
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        store.commit_runs(exp.id, runs, epochs, delete_checkpoints=["chunk-0"])
    with open_store(tmp_path / "initlab.db") as fresh:
        assert fresh.committed_cells(exp.id) == set() and fresh.epochs(exp.id) == []
        assert fresh.load_checkpoint(exp.id, "chunk-0") == (3, b"state")
    store._conn.execute("DROP TRIGGER temp.boom")
    # The checkpoint's deletion is the last statement of the commit: failing there too undoes all.
    _trigger(store, "keep", "checkpoints", "1", "SELECT RAISE(ABORT, 'injected failure')", "BEFORE DELETE")
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        store.commit_runs(exp.id, runs, epochs, delete_checkpoints=["chunk-0"])
    assert store.committed_cells(exp.id) == set()
    store._conn.execute("DROP TRIGGER temp.keep")
    assert store.commit_runs(exp.id, runs, epochs, delete_checkpoints=["chunk-0"]) == 2
    assert store.load_checkpoint(exp.id, "chunk-0") is None
    store.close()


def test_two_writers_wait_for_each_other_instead_of_failing(tmp_path):
    # One writer is the design; a second (two resumes at once) must queue, not hit "locked".
    first, second = open_store(tmp_path / "initlab.db"), open_store(tmp_path / "initlab.db")
    exp = first.create_experiment({"k": 1})
    failures: list[BaseException] = []

    def write(handle: Store, scheme: str) -> None:
        try:
            for seed in range(25):
                handle.commit_runs(exp.id, *make_chunk(exp.id, [(scheme, seed)], n_epochs=1))
                handle.save_checkpoint(exp.id, scheme, seed, b"x")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(h, s)) for h, s in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert len(first.runs(exp.id)) == 50
    first.close()
    second.close()


def test_a_reader_never_sees_an_open_transaction(tmp_path):
    writer, reader = open_store(tmp_path / "initlab.db"), open_store(tmp_path / "initlab.db")
    exp = writer.create_experiment({"k": 1})
    first = [("he_normal", 0), ("he_normal", 1)]
    writer.commit_runs(exp.id, *make_chunk(exp.id, first))
    paused, release = threading.Event(), threading.Event()

    def pause() -> int:
        paused.set()
        release.wait(30)
        return 0

    writer._conn.create_function("pause_for_reader", 0, pause)
    # Pauses the writer inside its transaction, with cell (zeros, 0) and its epochs written.
    _trigger(writer, "pause", "epochs", "NEW.scheme = 'zeros' AND NEW.seed = 1", "SELECT pause_for_reader()")
    second = [("zeros", 0), ("zeros", 1)]
    thread = threading.Thread(target=writer.commit_runs, args=(exp.id, *make_chunk(exp.id, second)))
    thread.start()
    try:
        assert paused.wait(30)
        assert reader.committed_cells(exp.id) == set(first)
        assert {e.cell for e in reader.epochs(exp.id)} == set(first)
    finally:
        release.set()
        thread.join(30)
    assert reader.committed_cells(exp.id) == set(first + second)
    assert len(reader.epochs(exp.id)) == 4 * N_EPOCHS
    writer.close()
    reader.close()


_KILLED_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from test_store import make_chunk
from initlab.store import open_store

path, eid = sys.argv[1], sys.argv[2]
store = open_store(path)
chunks = [[("he_normal", i), ("zeros", i)] for i in range(3)]
for i, cells in enumerate(chunks[:2]):
    store.save_checkpoint(eid, f"chunk-{i}", 2, b"state")
    store.commit_runs(eid, *make_chunk(eid, cells), delete_checkpoints=[f"chunk-{i}"])
store.save_checkpoint(eid, "chunk-2", 2, b"state of chunk 2")

def pause():
    print("inside the transaction", flush=True)
    time.sleep(120)
    return 0

store._conn.create_function("pause_for_kill", 0, pause)
store._conn.execute("CREATE TEMP TRIGGER pause AFTER INSERT ON main.epochs WHEN NEW.scheme = 'zeros' "
                    "BEGIN SELECT pause_for_kill(); END")
store.commit_runs(eid, *make_chunk(eid, chunks[2]), delete_checkpoints=["chunk-2"])
print("not killed", flush=True)
"""


def test_a_writer_killed_mid_chunk_leaves_only_whole_chunks(tmp_path):
    path = tmp_path / "initlab.db"
    with open_store(path) as store:
        eid = store.create_experiment({"k": 1}).id
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), eid, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "inside the transaction", proc.stderr.read() if proc.poll() is not None else line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # no-op once it is dead; reaps it if an assertion fired first
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "initlab.db-wal").exists()  # the kill left SQLite's journal behind
    whole = [("he_normal", 0), ("zeros", 0), ("he_normal", 1), ("zeros", 1)]
    with open_store(path) as store:
        assert store.committed_cells(eid) == set(whole)
        assert store.runs(eid) == make_chunk(eid, sorted(whole))[0]
        assert store.epochs(eid) == make_chunk(eid, sorted(whole))[1]
        assert store.checkpoint_keys(eid) == ["chunk-2"]
        assert store.load_checkpoint(eid, "chunk-2") == (2, b"state of chunk 2")
        assert store._conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # The resumed driver commits the lost chunk.
        last = [("he_normal", 2), ("zeros", 2)]
        assert store.commit_runs(eid, *make_chunk(eid, last), delete_checkpoints=["chunk-2"]) == 2
        assert len(store.runs(eid)) == 6 and store.checkpoint_keys(eid) == []
