"""``initlab compare``, ``runs`` and ``report`` through the real command (small settings)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SMALL = [
    "--schemes",
    "he_normal,zeros,xavier_uniform",
    "--seeds",
    "3",
    "--epochs",
    "2",
    "--width",
    "16",
    "--batch-size",
    "64",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def initlab(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV
    )


def start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "initlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    res = initlab("compare", *SMALL, "--store", str(tmp / "s.sqlite"), "--out", str(tmp / "out"), "--json")
    assert res.returncode == 0, res.stderr
    return tmp, json.loads(res.stdout)


def test_json_contract(finished):
    _, out = finished
    assert set(out) >= {"experiment_id", "summary", "runs"}
    assert {r["scheme"] for r in out["summary"]} == {"he_normal", "zeros", "xavier_uniform"}
    for row in out["summary"]:
        assert {"scheme", "n", "mean", "std", "ci_low", "ci_high", "diverged"} <= set(row)
        assert row["n"] == 3 and 0 <= row["mean"] <= 1 and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert len(out["runs"]) == 9
    assert {(r["scheme"], r["seed"]) for r in out["runs"]} == {
        (s, k) for s in ("he_normal", "zeros", "xavier_uniform") for k in range(3)
    }
    assert all(0 <= r["test_acc"] <= 1 and r["status"] in ("ok", "diverged") for r in out["runs"])
    zeros = next(r for r in out["summary"] if r["scheme"] == "zeros")
    he = next(r for r in out["summary"] if r["scheme"] == "he_normal")
    # zero init cannot break symmetry; He trains (after 2 epochs at width 16, He's seed 0 is still
    # at 0.40 test accuracy, seeds 1 and 2 above 0.85: the mean is near 0.73)
    assert zeros["mean"] < 0.35 < 0.6 < he["mean"]


def test_report_files(finished):
    tmp, out = finished
    report = tmp / "out"
    for name in (
        "report.md",
        "report.html",
        "accuracy.png",
        "curves.png",
        "convergence.png",
        "signal_at_init.png",
        "runs.csv",
    ):
        assert (report / name).stat().st_size > 0, name
    assert len((report / "runs.csv").read_text().strip().splitlines()) == 1 + 9
    assert out["experiment_id"] in (report / "report.md").read_text()


def test_runs_and_report_rebuild_from_the_store(finished, tmp_path):
    tmp, out = finished
    res = initlab("runs", "--store", str(tmp / "s.sqlite"), "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["id"] for r in rows] == [out["experiment_id"]] and rows[0]["status"] == "finished"
    assert rows[0]["cells"] == 9 and rows[0]["dataset"] == "digits"
    res = initlab(
        "report", out["experiment_id"][:6], "--store", str(tmp / "s.sqlite"), "--out", str(tmp_path / "r"), "--json"
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"] == out["summary"]
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"<title>initlab {out['experiment_id']}</title>" in page  # the id, not a template left unfilled


def _committed(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as con:
            return con.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_resume_after_a_killed_process_gives_the_uninterrupted_results(tmp_path):
    args = [
        "--schemes",
        "he_normal,xavier_uniform",
        "--seeds",
        "2",
        "--epochs",
        "12",
        "--width",
        "32",
        "--chunk-size",
        "1",
        "--batch-size",
        "32",
    ]
    store = tmp_path / "killed.sqlite"
    proc = start("compare", *args, "--store", str(store), "--out", str(tmp_path / "k"), "--json")
    deadline = time.time() + 240
    while _committed(store) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let the next cell write an epoch checkpoint or two
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _committed(store)
    assert 1 <= done_at_kill < 4
    resumed = initlab("compare", *args, "--store", str(store), "--out", str(tmp_path / "k"), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    straight = initlab(
        "compare", *args, "--store", str(tmp_path / "straight.sqlite"), "--out", str(tmp_path / "s"), "--json"
    )
    a, b = json.loads(resumed.stdout), json.loads(straight.stdout)
    assert [(r["scheme"], r["seed"]) for r in a["runs"]] == [(r["scheme"], r["seed"]) for r in b["runs"]]
    assert [r["test_acc"] for r in a["runs"]] == [r["test_acc"] for r in b["runs"]]
    assert _committed(store) == 4  # each (scheme, seed) once
    # Resuming a finished experiment does nothing and changes nothing.
    again = initlab("compare", *args, "--store", str(store), "--out", str(tmp_path / "k"), "--resume", "--json")
    assert json.loads(again.stdout)["runs"] == a["runs"]


def _one_line_exit_2(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--schemes", "he_normal,xavier_unifrom"], ["xavier_unifrom", "xavier_uniform"]),
        (["--dataset", "cifar11"], ["cifar11"]),
        (["--model", "transformer"], ["transformer"]),
        (["--model", "nonexistent_module_xyz:build"], ["nonexistent_module_xyz"]),
        (["--activation", "relux"], ["relux"]),
        (["--seeds", "0"], ["--seeds"]),
        (["--seeds", "abc"], ["--seeds"]),
        (["--epochs", "0"], ["--epochs", "0"]),
        (["--lr", "-0.1"], ["--lr", "-0.1"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--target", "1.5"], ["target", "1.5"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needles, tmp_path):
    res = initlab("compare", *SMALL, *args, "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"))
    _one_line_exit_2(res, *needles)


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = initlab("compare", *SMALL, "--store", str(tmp_path / "s.sqlite"), "--out", str(blocker / "sub"))
    _one_line_exit_2(res, "--out")
    assert not (tmp_path / "s.sqlite").exists()  # nothing was started


def test_store_from_a_newer_schema_is_refused_and_left_as_it_was(finished, tmp_path):
    tmp, _ = finished
    store = tmp_path / "newer.sqlite"
    store.write_bytes((tmp / "s.sqlite").read_bytes())
    with sqlite3.connect(store) as con:
        con.execute("update meta set value = '999' where key = 'schema_version'")
    con.close()
    before = store.read_bytes()
    res = initlab("compare", *SMALL, "--store", str(store), "--out", str(tmp_path / "o"))
    _one_line_exit_2(res, "schema")
    assert store.read_bytes() == before


def test_resume_with_a_different_config_is_refused(finished, tmp_path):
    tmp, out = finished
    store = tmp_path / "copy.sqlite"
    store.write_bytes((tmp / "s.sqlite").read_bytes())
    before = store.read_bytes()
    changed = [a if a != "2" else "3" for a in SMALL]  # epochs 2 -> 3
    res = initlab("compare", *changed, "--store", str(store), "--resume", "--out", str(tmp_path / "o"))
    _one_line_exit_2(res, "--resume")
    res = initlab(
        "compare", *changed, "--store", str(store), "--resume", out["experiment_id"], "--out", str(tmp_path / "o")
    )
    _one_line_exit_2(res, "different config", "epochs")
    assert store.read_bytes() == before


def test_report_of_an_unknown_experiment(finished):
    tmp, _ = finished
    _one_line_exit_2(initlab("report", "zzzzzzzz", "--store", str(tmp / "s.sqlite")), "zzzzzzzz")


def test_human_output_has_tables_and_progress_lines(tmp_path):
    res = initlab(
        "compare",
        "--schemes",
        "he_normal,zeros",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--width",
        "8",
        "--store",
        str(tmp_path / "s.sqlite"),
        "--out",
        str(tmp_path / "o"),
    )
    assert res.returncode == 0, res.stderr
    assert "Summary over seeds" in res.stdout and "run (seed)" in res.stdout and "article claims" in res.stdout
    # Not a terminal: plain progress lines on stderr, ending at 100%.
    progress = [line for line in res.stderr.splitlines() if " steps (" in line]
    assert progress and "(100%)" in progress[-1]


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--lr-grid", "0.01,-0.1"], ["--lr-grid", "-0.1"]),
        (["--lr-grid", "0.01,nan"], ["--lr-grid", "nan"]),
        (["--lr-grid", "0.01,inf"], ["--lr-grid", "inf"]),
        (["--lr-grid", "0.01,0"], ["--lr-grid", "0"]),
        (["--lr-grid", "0.01,abc"], ["--lr-grid", "abc"]),
        (["--budgets", "1,5"], ["--budgets", "5", "epochs=2"]),
        (["--margin", "0"], ["--margin", "0"]),
        (["--margin", "-1"], ["--margin", "-1"]),
        (["--lr", "0.1", "--lr-grid", "0.01,0.1"], ["--lr", "--lr-grid"]),
    ],
)
def test_bad_tuning_input_exits_2_with_one_line_and_writes_nothing(args, needles, tmp_path):
    res = initlab("compare", *SMALL, *args, "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"))
    _one_line_exit_2(res, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_lr_grid_json_selects_per_scheme_and_gives_verdicts(tmp_path):
    res = initlab(
        "compare",
        "--schemes",
        "he_normal,zeros",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--width",
        "16",
        "--batch-size",
        "64",
        "--lr-grid",
        "0.01,0.1",
        "--budgets",
        "1",
        "--margin",
        "1",
        "--store",
        str(tmp_path / "s.sqlite"),
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    rows = {r["scheme"]: r for r in out["summary"]}
    for row in rows.values():
        assert row["lr"] in (0.01, 0.1) and set(row["grid"]) == {"0.01", "0.1"}
        best = max(row["grid"], key=lambda k: (row["grid"][k], -float(k)))
        assert float(best) == row["lr"]  # the selected rate has the best validation mean
        assert [b["epoch"] for b in row["budgets"]] == [1, 2]
    assert rows["he_normal"]["vs_reference"] is None  # the reference itself
    zeros = rows["zeros"]
    assert zeros["vs_reference"] == "worse"  # zero init stays near chance
    lo, hi = zeros["diff_ci"]
    assert lo <= zeros["budgets"][-1]["diff"] <= hi < 0
    assert len(out["runs"]) == 4 and len(out["grid_runs"]) == 8
    assert {r["lr"] for r in out["grid_runs"]} == {0.01, 0.1}
    assert (tmp_path / "o" / "sensitivity.png").stat().st_size > 0
    assert "Budgets and equivalence" in (tmp_path / "o" / "report.md").read_text()
