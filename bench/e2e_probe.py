"""One ``initlab`` command in this fresh process, timed by phase (``bench/engine.py --only e2e``).

Usage: ``python bench/e2e_probe.py OUT.json initlab-args...``. The command runs through the
console script's own entry (``initlab.cli.entry``: its garbage-collector settings, its exit),
with the library functions of each phase wrapped by timers. An atexit handler, registered
before anything else and so the last to run, writes ``{phase: [wall s, CPU s]}`` and the
monotonic clock at that moment to OUT.json; the caller subtracts it from the time it saw the
process end, which gives the interpreter's exit (finalization), the one part no code of the
process can time. Every second of the process belongs to one phase:

``python start`` (exec to the first line of this script), ``import torch``, ``import initlab``
(the compare command's modules), ``import initlab.report (scipy.stats)``, then the command's phases (``data``, ``signal at
init``, ``training (+ commit)``, ``summary``, ``report + plots`` with matplotlib's import),
``unnamed`` (pre-flight, template, store, argument parsing), and (by the caller) ``exit``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

STARTED = time.monotonic()


def _since_exec() -> float:
    """Seconds from this process's exec to now, from /proc (Linux); 0 elsewhere."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


PHASES: dict[str, list[float]] = {"python start": [_since_exec(), time.process_time()]}
_last = [time.monotonic(), time.process_time()]


def _mark(name: str) -> None:
    now = [time.monotonic(), time.process_time()]
    PHASES[name] = [now[0] - _last[0], now[1] - _last[1]]
    _last[:] = now


def _timed(module, name: str, key: str) -> None:
    original = getattr(module, name)

    def wrapper(*a, **k):
        start = [time.monotonic(), time.process_time()]
        try:
            return original(*a, **k)
        finally:
            spent = PHASES.setdefault(key, [0.0, 0.0])
            spent[0] += time.monotonic() - start[0]
            spent[1] += time.process_time() - start[1]

    setattr(module, name, wrapper)


def _write(path: str) -> None:
    named = [sum(v[i] for k, v in PHASES.items() if k in COMMAND_PHASES) for i in (0, 1)]
    PHASES["unnamed"] = [time.monotonic() - _last[0] - named[0], time.process_time() - _last[1] - named[1]]
    with open(path, "w") as fh:
        json.dump({"phases": PHASES, "atexit_monotonic": time.monotonic()}, fh)


COMMAND_PHASES = ("data", "signal at init", "training (+ commit)", "summary", "report + plots")

if __name__ == "__main__":
    out, argv = sys.argv[1], sys.argv[2:]
    atexit.register(_write, out)
    import initlab.cli

    # as the console script imports a command module (with torch): its own way when it has one
    importer = getattr(initlab.cli, "_import_without_collections", __import__)
    importer("torch")
    _mark("import torch")
    importer("initlab.cli.compare_cmd")
    import initlab.data
    import initlab.sweep.driver

    _mark("import initlab")
    import initlab.report

    _mark("import initlab.report (scipy.stats)")
    _timed(initlab.data, "load", "data")
    _timed(initlab.sweep.driver, "signal_at_init", "signal at init")
    _timed(initlab.sweep.driver, "run_local", "training (+ commit)")
    _timed(initlab.sweep.driver, "report_data", "summary")
    _timed(initlab.report, "write_report", "report + plots")
    from initlab.cli import entry

    sys.argv = ["initlab", *argv]
    entry()
