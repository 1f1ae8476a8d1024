"""A report's figures drawn on two cores (initlab.report.forked): same files, no lost error."""

from __future__ import annotations

import os

import pytest

from initlab.report import forked

FORKS = forked.can_fork(2)


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


@pytest.mark.skipif(not FORKS, reason="needs Linux and two usable cores")
def test_a_forked_child_draws_its_share_and_every_file_is_there_when_the_call_returns(tmp_path):
    keys = ["accuracy", "curves", "convergence", "signal"]
    files = forked.draw_all(_jobs(tmp_path, keys))
    assert list(files) == keys and all(files[k] == tmp_path / f"{k}.txt" for k in keys)
    writers = _writers(tmp_path, keys)
    assert {writers["signal"], writers["convergence"]} == {os.getpid()}
    assert writers["curves"] == writers["accuracy"] != os.getpid()  # the child, reaped by now
    with pytest.raises(ChildProcessError):
        os.waitpid(writers["curves"], os.WNOHANG)


@pytest.mark.skipif(not FORKS, reason="needs Linux and two usable cores")
def test_a_failing_child_leaves_its_figures_to_this_process_and_a_real_error_is_raised_here(tmp_path):
    keys = ["accuracy", "curves", "signal"]
    forked.draw_all(_jobs(tmp_path, keys, fail_in_child=keys))
    assert set(_writers(tmp_path, keys).values()) == {os.getpid()}
    with pytest.raises(RuntimeError, match="accuracy failed"):
        forked.draw_all(_jobs(tmp_path, keys, fail_always=["accuracy"]))


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
