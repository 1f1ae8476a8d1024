"""A report's figures drawn on two cores (initlab.report.forked): same files, no lost error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from initlab.report import forked

# Decided without this process's state: by the time a whole suite reaches these tests, other
# tests may have imported Ray, and can_fork refuses to fork beside Ray's threads.
FORKS = sys.platform == "linux" and hasattr(os, "fork") and forked.usable_cores() >= 2


def _jobs(tmp_path, keys, fail_in_child=(), fail_always=()):
    parent = os.getpid()

    def draw(key):
        def run():
            if key in fail_always or (key in fail_in_child and os.getpid() != parent):
                raise RuntimeError(f"{key} failed")
            (tmp_path / f"{key}.txt").write_text(str(os.getpid()))

        return run

    return {key: (tmp_path / f"{key}.txt", draw(key)) for key in keys}


def _writers(tmp_path, keys):
    return {key: int((tmp_path / f"{key}.txt").read_text()) for key in keys}


def test_the_split_puts_the_costliest_figures_on_different_sides():
    mine, theirs = forked.split(["accuracy", "curves", "convergence", "signal"])
    assert (mine, theirs) == (["signal", "convergence"], ["curves", "accuracy"])
    assert forked.split(["accuracy", "curves"]) == (["curves"], ["accuracy"])


def _fresh(tmp_path, scenario: str) -> dict:
    """Run ``scenario`` (which sees ``forked``, ``jobs``, ``writers``, ``tmp``) in a fresh
    interpreter, where no other test has loaded Ray, and return the JSON it prints."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from initlab.report import forked
        tmp = Path(sys.argv[1])
        parent = os.getpid()
        def jobs(keys, fail_in_child=(), fail_always=()):
            def draw(key):
                def run():
                    if key in fail_always or (key in fail_in_child and os.getpid() != parent):
                        raise RuntimeError(f"{key} failed")
                    (tmp / f"{key}.txt").write_text(str(os.getpid()))
                return run
            return {key: (tmp / f"{key}.txt", draw(key)) for key in keys}
        def writers(keys):
            return {key: int((tmp / f"{key}.txt").read_text()) for key in keys}
        assert forked.can_fork(2), "a fresh process should be allowed to fork"
        """
    ) + textwrap.dedent(scenario)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not FORKS, reason="needs Linux and two usable cores")
def test_a_forked_child_draws_its_share_and_every_file_is_there_when_the_call_returns(tmp_path):
    out = _fresh(
        tmp_path,
        """
        keys = ["accuracy", "curves", "convergence", "signal"]
        files = forked.draw_all(jobs(keys))
        assert list(files) == keys and all(files[k] == tmp / f"{k}.txt" for k in keys)
        try:
            os.waitpid(writers(keys)["curves"], os.WNOHANG)
            reaped = False
        except ChildProcessError:
            reaped = True
        print(json.dumps({"me": os.getpid(), "writers": writers(keys), "reaped": reaped}))
        """,
    )
    writers = out["writers"]
    assert {writers["signal"], writers["convergence"]} == {out["me"]}
    assert writers["curves"] == writers["accuracy"] != out["me"]
    assert out["reaped"]  # the child is gone by the time the call returns


@pytest.mark.skipif(not FORKS, reason="needs Linux and two usable cores")
def test_a_failing_child_leaves_its_figures_to_this_process_and_a_real_error_is_raised_here(tmp_path):
    out = _fresh(
        tmp_path,
        """
        keys = ["accuracy", "curves", "signal"]
        forked.draw_all(jobs(keys, fail_in_child=keys))
        redrawn = sorted(set(writers(keys).values()))
        try:
            forked.draw_all(jobs(keys, fail_always=["accuracy"]))
            raised = ""
        except RuntimeError as exc:
            raised = str(exc)
        print(json.dumps({"me": os.getpid(), "redrawn": redrawn, "raised": raised}))
        """,
    )
    assert out["redrawn"] == [out["me"]]
    assert out["raised"] == "accuracy failed"


def test_fork_is_refused_beside_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", object())
    assert not forked.can_fork(4)


def test_one_core_draws_everything_here_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(forked, "usable_cores", lambda: 1)
    keys = ["signal", "accuracy", "curves"]
    assert list(forked.draw_all(_jobs(tmp_path, keys))) == keys
    assert set(_writers(tmp_path, keys).values()) == {os.getpid()}


def test_a_refused_fork_draws_everything_here(tmp_path, monkeypatch):
    def no_room():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(forked, "can_fork", lambda n: True)
    monkeypatch.setattr(forked.os, "fork", no_room)
    keys = ["signal", "accuracy"]
    assert list(forked.draw_all(_jobs(tmp_path, keys))) == keys
    assert set(_writers(tmp_path, keys).values()) == {os.getpid()}
