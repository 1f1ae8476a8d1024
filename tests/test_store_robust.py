"""The store under stress (issue #16): signals, crashed writers, damaged files, free pages,
two writers at once, and the version 1 -> 2 migration."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from initlab.errors import UserError
from initlab.store import SCHEMA_VERSION, open_store
from initlab.store.guard import STALE_S, effective_status, writing
from initlab.store.sqlite import _SCHEMA

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--schemes", "he_normal,zeros", "--seeds", "3", "--epochs", "2", "--width", "8", "--batch-size", "64"]
# checkpoints every epoch (the default is every 120 s of training): the tests wait for the first one
LONG = [
    "--schemes",
    "he_normal,zeros",
    "--seeds",
    "2",
    "--epochs",
    "400",
    "--width",
    "8",
    "--chunk-size",
    "1",
    "--checkpoint-every",
    "1ep",
]


def initlab(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "initlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def wait_for_a_checkpoint(store: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until the writer has saved an epoch checkpoint: training is under way."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=1) as raw:
                    if raw.execute("SELECT count(*) FROM checkpoints").fetchone()[0]:
                        return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint in {store} (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}")


def runs_json(store: Path) -> list[dict]:
    res = initlab("runs", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# ---- interrupted, failed, stale -----------------------------------------------------------------


@pytest.mark.slow
def test_a_compare_stopped_by_sigterm_is_marked_interrupted(tmp_path):
    signum, name = signal.SIGTERM, "SIGTERM"
    store = tmp_path / "s.sqlite"
    proc = start("compare", *LONG, "--store", str(store), "--out", str(tmp_path / "out"))
    wait_for_a_checkpoint(store, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == f"initlab: interrupted ({name})" and "Traceback" not in err
    (row,) = runs_json(store)
    assert row["status"] == "interrupted"
    with open_store(store) as db:
        (experiment,) = db.list_experiments()
        assert experiment.extra["stop"]["reason"] == name
        assert db.checkpoint_keys(experiment.id)  # kept for --resume


def test_ctrl_c_marks_the_experiment_interrupted(tmp_path):
    with open_store(tmp_path / "s.sqlite") as db:
        exp = db.create_experiment({"k": 1})
        with pytest.raises(KeyboardInterrupt), writing(db, exp.id):
            raise KeyboardInterrupt
        record = db.get_experiment(exp.id)
        assert record.status == "interrupted" and record.extra["stop"]["reason"] == "SIGINT"
        with pytest.raises(SystemExit), writing(db, exp.id):
            sys.exit(15)  # what Ray's SIGTERM handler does in the driver
        record = db.get_experiment(exp.id)
        assert record.status == "interrupted" and record.extra["stop"] == {
            **record.extra["stop"],
            "reason": "exit",
            "code": 15,
        }


@pytest.mark.slow
def test_a_killed_writer_shows_as_stale(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = start("compare", *LONG, "--store", str(store), "--out", str(tmp_path / "out"))
    wait_for_a_checkpoint(store, proc)
    assert runs_json(store)[0]["status"] == "running"  # alive: its process is there
    proc.kill()  # SIGKILL: no handler runs, the status stays "running" in the file
    proc.communicate(timeout=60)
    with open_store(store) as db:
        assert db.list_experiments()[0].status == "running"
    assert runs_json(store)[0]["status"] == "stale"


def test_effective_status_from_the_heartbeat():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def extra(age_s: float, host: str = "elsewhere", pid: int = 1) -> dict:
        return {"writer": {"host": host, "pid": pid, "heartbeat": (now - timedelta(seconds=age_s)).isoformat()}}

    assert effective_status("running", extra(5), now=now) == "running"
    assert effective_status("running", extra(STALE_S + 1), now=now) == "stale"
    assert effective_status("finished", extra(10 * STALE_S), now=now) == "finished"
    assert effective_status("running", {}, now=now) == "running"  # no writer recorded: as stored
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert effective_status("running", extra(1, socket.gethostname(), dead.pid), now=now) == "stale"


def test_an_error_marks_the_experiment_failed_with_the_reason(tmp_path):
    with open_store(tmp_path / "s.sqlite") as db:
        exp = db.create_experiment({"k": 1})

        def fail_while_writing() -> None:
            with writing(db, exp.id) as beat:
                beat()
                raise MemoryError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 40 GB")

        with pytest.raises(MemoryError):
            fail_while_writing()
        record = db.get_experiment(exp.id)
        assert record.status == "failed"
        assert record.extra["stop"]["reason"] == "error" and "40 GB" in record.extra["stop"]["message"]
        assert record.extra["writer"]["pid"] == os.getpid()
        with writing(db, exp.id):
            pass
        assert db.get_experiment(exp.id).status == "finished"


def test_an_allocation_failure_that_slips_through_is_one_line(monkeypatch, capsys):
    from initlab import cli
    from initlab.cli import schemes_cmd

    def allocate(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 40000000000 bytes."
        )

    monkeypatch.setattr(schemes_cmd, "run", allocate)
    assert cli.main(["schemes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("initlab schemes: error: out of memory") and "--chunk-size" in err[0]

    def bug(args):
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(schemes_cmd, "run", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # other errors keep their traceback
        cli.main(["schemes"])


# ---- damage -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    from initlab.sweep import compare

    tmp = tmp_path_factory.mktemp("finished")
    store = tmp / "s.sqlite"
    data = compare(schemes=("he_normal", "zeros"), seeds=(0, 1, 2), epochs=3, width=8, store=store, progress=False)
    return store, data.experiment_id


def _report_numbers(store: Path, experiment_id: str):
    from initlab.sweep import report_data

    with open_store(store, create=False) as db:
        data = report_data(db, experiment_id)
    return data.runs, data.summary, data.epochs


def test_a_damaged_store_gives_one_clear_error_never_wrong_numbers(finished_store, tmp_path):
    store, eid = finished_store
    truth = repr(_report_numbers(store, eid))
    size, page = store.stat().st_size, 4096
    pages = size // page
    outcomes = {"refused": 0, "same": 0}
    for k in range(1, pages):  # page 0 holds the header: damage there is "not a database"
        for offset in (100, page // 2, page - 64):
            copy = tmp_path / f"damaged-{k}-{offset}.sqlite"
            shutil.copy(store, copy)
            with open(copy, "r+b") as fh:
                fh.seek(k * page + offset)
                fh.write(bytes((i * 37 + k) % 256 for i in range(48)))
            try:
                numbers, refusal = repr(_report_numbers(copy, eid)), None
            except UserError as exc:
                numbers, refusal = None, str(exc)
            if refusal is not None:
                assert "damaged" in refusal or "not an initlab store" in refusal or "unknown experiment" in refusal
                outcomes["refused"] += 1
            else:
                assert numbers == truth, f"page {k} offset {offset}: wrong numbers without a warning"
                outcomes["same"] += 1
            copy.unlink()
    assert outcomes["refused"] > 0, outcomes


def test_report_of_a_damaged_store_is_one_line(finished_store, tmp_path):
    store, eid = finished_store
    copy = tmp_path / "damaged.sqlite"
    shutil.copy(store, copy)
    with open_store(copy) as db:
        value = max(r.test_acc for r in db.runs(eid))
    data = bytearray(copy.read_bytes())
    where = data.find(struct.pack(">d", value))  # SQLite stores a REAL as a big-endian double
    assert where > 0
    data[where + 7] ^= 1  # one bit of one accuracy: the file is still a well-formed database
    copy.write_bytes(bytes(data))
    res = initlab("report", eid, "--store", str(copy), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "is damaged" in line and "checksum" in line and ".recover" in line
    assert not (tmp_path / "out" / "report.html").exists()


# ---- space --------------------------------------------------------------------------------------


def test_deleted_checkpoints_give_their_pages_back(tmp_path):
    from initlab.store import RunRecord, StoredEpoch

    path = tmp_path / "s.sqlite"
    with open_store(path) as db:
        exp = db.create_experiment({"k": 1})
        for key in ("cell-0000", "cell-0001"):
            db.save_checkpoint(exp.id, key, 1, os.urandom(2_000_000))
        _, full = db.free_pages()
        run = RunRecord(
            experiment_id=exp.id,
            scheme="he_normal",
            seed=0,
            status="ok",
            test_acc=0.9,
            test_loss=0.3,
            train_loss=0.2,
            train_acc=0.95,
            diverged_step=None,
            wall_time=1.0,
            extra={},
        )
        epoch = StoredEpoch(
            experiment_id=exp.id,
            scheme="he_normal",
            seed=0,
            epoch=1,
            step=10,
            train_loss=0.2,
            train_acc=0.95,
            test_loss=0.3,
            test_acc=0.9,
            wall_time=1.0,
        )
        db.commit_runs(exp.id, [run], [epoch], delete_checkpoints=["cell-0000"])
        db.delete_checkpoint(exp.id, "cell-0001")
        free, after = db.free_pages()
        assert free == 0 and after < full // 10, (free, after, full)


def test_compact_reclaims_the_free_pages_of_an_old_store(tmp_path):
    path = tmp_path / "old.sqlite"
    with open_store(path) as db:
        exp = db.create_experiment({"k": 1})
    raw = sqlite3.connect(path)  # an older store: no auto_vacuum, checkpoints deleted, pages left free
    raw.execute("PRAGMA auto_vacuum = NONE")
    raw.execute("VACUUM")
    raw.execute("INSERT INTO checkpoints VALUES (?, 'k', 1, ?, 'now', NULL)", (exp.id, os.urandom(3_000_000)))
    raw.commit()
    raw.execute("DELETE FROM checkpoints")
    raw.commit()
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    raw.close()
    with open_store(path) as db:
        free, pages = db.free_pages()
        assert free > pages // 2
        assert db.compact()
        free, pages = db.free_pages()
        assert free == 0 and pages < 50
        assert db.get_experiment(exp.id).config == {"k": 1}
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    raw.close()


# ---- two writers, migration ---------------------------------------------------------------------


@pytest.mark.slow
def test_two_compares_writing_one_store_at_once_both_finish(tmp_path):
    store = tmp_path / "shared.sqlite"
    procs = [
        start(
            "compare",
            *TINY,
            "--lr",
            lr,
            "--chunk-size",
            "1",
            "--store",
            str(store),
            "--json",
            "--out",
            str(tmp_path / f"out-{lr}"),
        )
        for lr in ("0.05", "0.1")
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    ids = {json.loads(out)["experiment_id"] for out, _ in outs}
    assert len(ids) == 2
    with open_store(store) as db:
        experiments = db.list_experiments()
        assert {e.id for e in experiments} == ids and all(e.status == "finished" for e in experiments)
        for e in experiments:
            cells = [(r.scheme, r.seed) for r in db.runs(e.id)]
            assert sorted(cells) == sorted({(s, seed) for s in ("he_normal", "zeros") for seed in range(3)})
            assert len(db.epochs(e.id)) == 6 * 2
            assert db.checkpoint_keys(e.id) == []
        db.check()


def test_a_version_1_store_is_migrated_and_keeps_everything(tmp_path):
    path = tmp_path / "v1.sqlite"
    # version 1's tables: no 'failed' status, no checksum columns
    v1 = [
        re.sub(r",\s*checksum TEXT\s*\)", ")", re.sub(r"\s*checksum TEXT,", "", s)).replace(", 'failed'", "")
        for s in _SCHEMA
    ]
    assert not any("checksum" in s for s in v1) and len(v1) == len(_SCHEMA)
    raw = sqlite3.connect(path)
    for statement in v1:
        raw.execute(statement)
    raw.execute("INSERT INTO meta VALUES ('application', 'initlab'), ('schema_version', '1')")
    raw.execute(
        "INSERT INTO experiments (id, name, config_json, config_hash, created_at, status, initlab_version, "
        "torch_version, python_version) VALUES ('abcd1234', NULL, '{\"k\": 1}', 'h', 'now', 'running', "
        "'0.1.0', '2', '3')"
    )
    raw.execute("INSERT INTO runs VALUES ('abcd1234', 'he_normal', 0, 'ok', 0.9, 0.1, 0.1, 0.9, NULL, 1.0, '{}')")
    raw.commit()
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE experiments SET status = 'failed'")
    raw.close()
    with open_store(path) as db:
        db.set_status("abcd1234", "failed")
        assert db.get_experiment("abcd1234").status == "failed"
        assert [r.test_acc for r in db.runs("abcd1234")] == [0.9]
        db.check()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    raw.close()
