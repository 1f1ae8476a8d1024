"""Figures drawn on two cores: a forked child draws part of a report's PNGs while this process
draws the rest, and this process waits for it before anything reads the files.

matplotlib draws on one core; a report's figures are independent files, and once training is
over the second core is idle. On Linux with at least two usable cores, ``draw_all`` forks once
(``os.fork``: the child shares the already imported matplotlib and the report's data, nothing is
pickled), splits the figures by their measured cost (longest first, each to the lighter side),
and returns only when both sides are done. The files are the same bytes either way (Agg draws
deterministically). A child that fails or dies leaves its figures to this process, which draws
them again (the error, if real, is then raised here with its traceback); nothing outlives the
call. Elsewhere (no ``fork``, one core, one figure) the figures are drawn here, in order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# Relative cost of each figure of a compare report (CPU seconds measured on the quick e2e
# workload: signal 0.84, curves 0.66, accuracy 0.35, convergence 0.29); other keys count 2.
FIGURE_COST = {"signal": 3, "curves": 2, "sensitivity": 2, "accuracy": 1, "convergence": 1}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def split(keys: list[str]) -> tuple[list[str], list[str]]:
    """(this process's keys, the child's keys): longest first, each to the lighter side."""
    sides: tuple[list[str], list[str]] = ([], [])
    load = [0, 0]
    for key in sorted(keys, key=lambda k: -FIGURE_COST.get(k, 2)):
        side = 0 if load[0] <= load[1] else 1
        sides[side].append(key)
        load[side] += FIGURE_COST.get(key, 2)
    return sides


def can_fork(n_jobs: int) -> bool:
    """Two or more figures, Linux, two usable cores, and no runtime that forbids a fork
    (Ray's and gRPC's background threads)."""
    if n_jobs < 2 or sys.platform != "linux" or not hasattr(os, "fork") or usable_cores() < 2:
        return False
    return not any(name in sys.modules for name in ("ray", "grpc"))


def draw_all(jobs: Mapping[str, tuple[Path, Callable[[], object]]]) -> dict[str, Path]:
    """Run every ``draw`` of ``jobs`` (key -> (the file it writes, draw)); key -> file, in the
    order of ``jobs``. See the module docstring for where each runs."""
    keys = list(jobs)
    files = {key: jobs[key][0] for key in keys}

    def run(these: list[str]) -> None:
        for key in these:
            jobs[key][1]()

    if not can_fork(len(keys)):
        run(keys)
        return files
    import matplotlib.backends.backend_agg  # noqa: F401  imported once, before the fork
    import matplotlib.figure  # noqa: F401

    mine, theirs = split(keys)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:  # no room for a child (strict overcommit, process limits): draw here
        run(keys)
        return files
    if pid == 0:  # the child: draw, then leave without running this process's exit handlers
        code = 1
        try:
            run(theirs)
            code = 0
        finally:
            os._exit(code)
    try:
        run(mine)
    finally:
        _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        run(theirs)  # the child failed: draw its figures here (a real error raises here)
    return files


__all__ = ["FIGURE_COST", "can_fork", "draw_all", "split", "usable_cores"]
