"""Who is writing an experiment, and how it ended: heartbeat, signals, final status.

``writing(store, experiment_id)`` wraps the work of a writer (``compare``):

- on entry the experiment is "running" and ``extra["writer"]`` names this process
  (``host``, ``pid``, ``heartbeat``: UTC time); the ``beat()`` it yields refreshes the heartbeat
  at most every ``HEARTBEAT_S`` seconds (call it as often as you like, e.g. every step);
- SIGTERM (and SIGINT, already ``KeyboardInterrupt``) raise ``Terminated`` in the main thread,
  so the work unwinds: the status becomes "interrupted" and ``extra["stop"]`` says which signal;
- ``SystemExit`` (a handler that exits, as Ray's does in the driver) also means "interrupted";
- any other exception sets "failed" with ``extra["stop"] = {"reason": "error", "message": ...}``;
- a clean exit sets "finished".

A writer killed with SIGKILL, or a crashed machine, cannot say so: ``effective_status`` reads a
"running" experiment as "stale" when its writer's process is gone (same host) or its heartbeat
is older than ``STALE_S``. A stale experiment is resumable (``compare --resume ID``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from initlab.store.base import Store, utc_now

HEARTBEAT_S = 30.0  # seconds between heartbeats
STALE_S = 10 * HEARTBEAT_S  # a heartbeat this old means the writer is gone


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM, so ``finally`` blocks and status updates run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a worker thread is stopped by its owner
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_reason(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, Terminated):
        return {"reason": exc.args[0] if exc.args else "SIGTERM", "at": utc_now()}
    if isinstance(exc, KeyboardInterrupt):
        return {"reason": "SIGINT", "at": utc_now()}
    if isinstance(exc, SystemExit):  # e.g. Ray's own SIGTERM handler in the driver exits
        return {"reason": "exit", "code": exc.code if isinstance(exc.code, int) else str(exc.code), "at": utc_now()}
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"reason": "error", "error": type(exc).__name__, "message": message[:500], "at": utc_now()}


@contextlib.contextmanager
def writing(store: Store, experiment_id: str, *, heartbeat_s: float = HEARTBEAT_S) -> Iterator[Callable[[], None]]:
    """Mark ``experiment_id`` as written by this process; yields ``beat()``. See the module doc."""
    writer = {"host": socket.gethostname(), "pid": os.getpid()}
    last = [0.0]

    def beat(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= heartbeat_s:
            last[0] = now
            store.set_experiment_extra(experiment_id, "writer", {**writer, "heartbeat": utc_now()})

    with _sigterm_raises():
        store.set_status(experiment_id, "running")
        beat(force=True)
        try:
            yield beat
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            with contextlib.suppress(Exception):
                store.set_experiment_extra(experiment_id, "stop", _stop_reason(exc))
                store.set_status(experiment_id, status)
            raise
        store.set_status(experiment_id, "finished")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def effective_status(status: str, extra: dict[str, Any], *, now: datetime | None = None) -> str:
    """The status to show: "stale" for a "running" experiment whose writer is gone."""
    if status != "running":
        return status
    writer = extra.get("writer")
    if not isinstance(writer, dict):
        return status
    same_host = writer.get("host") == socket.gethostname() and isinstance(writer.get("pid"), int)
    if same_host and writer["pid"] != os.getpid() and not _process_alive(writer["pid"]):
        return "stale"
    try:
        beat = datetime.fromisoformat(str(writer.get("heartbeat")))
    except ValueError:
        return status
    now = now or datetime.now(timezone.utc)
    return "stale" if (now - beat).total_seconds() > STALE_S else status
