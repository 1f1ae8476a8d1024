"""The Ray backend of ``initlab compare``: one Ray task per chunk, only the driver writes the store.

A sweep is cut into chunks (``initlab.sweep.chunks``); here each pending chunk becomes one Ray task
that trains its members together with ``run_chunk`` and returns its ``ChunkResult``. The driver, the
process that called ``compare``, is the only one that touches the store: it collects results as
they arrive (``ray.wait``) and commits each chunk as one transaction, exactly as ``run_local``
does, so a killed driver loses at most the chunks in flight and ``--resume`` continues.

Guarantees:

- **Same bits as the local backend.** Chunks are the same (same config, same chunking), so each
  member trains with the same ensemble-mates on the same data order; every task runs torch with
  one intra-op thread, as ``OMP_NUM_THREADS=1`` does locally (the engine's promise is "same
  machine type and thread count: same bits").
- **A dead worker is retried.** Tasks are ``max_retries=3``: when the worker process dies (killed,
  out of memory, node lost) Ray runs the chunk again from its start; a chunk is deterministic, so
  the retry returns what the first attempt would have. An exception raised *by* the chunk (bad
  config, bug) is not retried: it stops the sweep with that error.
- **Committed chunks are never redone.** The driver passes only pending chunks; a chunk is submitted
  once (retries aside) and committed once.
- **Resume.** A chunk that a local run left half-done (an epoch checkpoint in the store) is sent
  with its checkpoint and continues from it. Ray tasks send no checkpoints back (that would make
  the workers write through the driver every epoch): a killed driver loses its in-flight chunks,
  which start over on ``--resume``.

The dataset goes into the object store once (``ray.put``); every task reads it from there (one
copy per node, shared by the node's workers). At most ``IN_FLIGHT_PER_CPU`` tasks per cluster CPU
are submitted at a time, so a sweep of many thousand chunks keeps the driver's wait list, the
object store and the work lost to a driver kill small, while the cluster stays busy and an
autoscaler still sees queued demand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from initlab.errors import UserError
from initlab.sweep.chunks import MemberChunk, steps_per_chunk
from initlab.sweep.config import CompareConfig
from initlab.sweep.records import ChunkResult, commit_chunk

RAY_MIN_VERSION = (2, 9)
INSTALL_HINT = "pip install 'initlab[ray]'"
PROBE_TIMEOUT = 5.0  # seconds to open a TCP connection to the head's GCS port
MAX_RETRIES = 3  # attempts after the first when a task's worker dies
IN_FLIGHT_PER_CPU = 2  # tasks submitted per cluster CPU: one running, one queued behind it

# What a task runs: (config, chunk, dataset, resume_blob) -> ChunkResult.
ChunkTask = Callable[[CompareConfig, MemberChunk, Any, "bytes | None"], ChunkResult]


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_ray(address: str | None = None) -> None:
    """Raise ``UserError`` (one line, with the install command) unless ``ray >= 2.9`` imports,
    and, given a ``HOST:PORT`` address, unless something listens there.

    Called by ``compare(backend="ray")`` before any work, so a missing extra or a mistyped
    address costs nothing (``ray.init`` on an unreachable address retries for minutes).
    """
    try:
        import ray
    except ImportError as exc:
        reason = (str(exc).strip().splitlines() or ["ray is not importable"])[0]
        raise UserError(
            f"backend: ray needs the optional ray extra, which is not installed ({reason}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    version = getattr(ray, "__version__", "0")
    if _version_tuple(version) < RAY_MIN_VERSION:
        raise UserError(
            f"backend: ray needs ray >= {'.'.join(map(str, RAY_MIN_VERSION))}; found ray {version}. "
            f"Upgrade with: {INSTALL_HINT}"
        )
    probe_address(address)


def probe_address(address: str | None) -> None:
    """``UserError`` unless a TCP connection to ``HOST:PORT`` opens within ``PROBE_TIMEOUT``.

    Addresses Ray resolves itself (None, ``auto``, ``local``, ``ray://...``) pass unchecked.
    """
    if address is None or address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit():
        raise UserError(
            f"address: expected HOST:PORT (e.g. 10.0.0.5:6379), 'auto' or ray://HOST:10001; got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT).close()
    except OSError as exc:
        raise UserError(
            f"address: no Ray cluster reachable at {address!r} ({exc.strerror or exc}); start one with "
            f"`ray start --head` and pass the address it prints, or leave out --address for a local "
            f"instance"
        ) from None


def train_chunk(config: CompareConfig, chunk: MemberChunk, dataset: Any, resume_blob: bytes | None) -> ChunkResult:
    """The default task body: ``run_chunk`` (continued from ``resume_blob`` when given)."""
    from initlab.sweep.runner import run_chunk

    return run_chunk(config, chunk, dataset, resume_blob=resume_blob)


def _chunk_task(
    task: ChunkTask,
    config: CompareConfig,
    chunk: MemberChunk,
    dataset: Any,
    resume_blob: bytes | None,
) -> ChunkResult:
    # Runs in a Ray worker. One intra-op thread: the task holds one CPU (several tasks share a
    # node) and the local backend's bits are defined at a fixed thread count.
    import torch

    torch.set_num_threads(1)
    return task(config, chunk, dataset, resume_blob)


def _connect(address: str | None) -> bool:
    """Connect to Ray; True when this call did ``ray.init`` (so ``ray.shutdown`` is its to call:
    it stops a local instance, and only disconnects from a cluster).

    ``address`` None: ``RAY_ADDRESS`` if set (as under ``ray job submit``), else a new local
    instance on every CPU of this machine. Any other address goes to ``ray.init`` as is
    (``auto``: the cluster this node belongs to; ``HOST:PORT``: that head; ``ray://...``: Ray Client).
    """
    import ray

    if ray.is_initialized():  # the caller (a notebook, a test) already chose the cluster
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
        return True
    target = address if address is not None else os.environ["RAY_ADDRESS"]
    probe_address(target)
    try:
        ray.init(address=target, log_to_driver=False, logging_level=logging.ERROR)
    except ConnectionError as exc:
        reason = (str(exc).strip().splitlines() or ["connection failed"])[0]
        raise UserError(
            f"address: no Ray cluster reachable at {target!r} ({reason}); start one with "
            f"`ray start --head`, or leave out --address for a local instance"
        ) from None
    return True


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _result(ref: Any, chunk: MemberChunk) -> ChunkResult:
    """``ray.get`` of a finished task, with the chunk's own error when it raised one."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ValueError):  # UserError and friends: one line in the CLI
            raise cause from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError, ray.exceptions.NodeDiedError) as exc:
        raise RuntimeError(
            f"{chunk.key}: its Ray worker died and Ray's retries are used up ({type(exc).__name__}); the cells "
            f"committed so far are kept, rerun with --resume to continue"
        ) from exc


def run_ray(
    store: Any,
    experiment_id: str,
    config: CompareConfig,
    chunks: list[MemberChunk],
    dataset: Any,
    advance: Callable[[int], None],
    address: str | None = None,
    *,
    chunk_task: ChunkTask = train_chunk,
) -> list[int]:
    """Run ``chunks`` as Ray tasks and commit each one's records to ``store`` as it finishes.

    Args:
        store: the open results store; only this process writes it.
        experiment_id: the experiment the records belong to.
        config: the comparison's config (shipped to every task).
        chunks: the pending chunks, each submitted once (retried only when its worker dies).
        dataset: put into the object store once; tasks read it from there.
        advance: ``advance(n)`` moves the progress bar by ``n`` training steps; called with the
            chunk's steps when its records are committed.
        address: a Ray cluster (``ray.init``'s ``address``); None: ``RAY_ADDRESS`` or a local
            instance. What this call initialized it shuts down at the end (a local instance
            stops, a cluster is only disconnected from); a Ray already initialized in this
            process is used as it is and left running.
        chunk_task: what a task runs, ``(config, chunk, dataset, resume_blob) -> ChunkResult``
            (``run_chunk``'s ``ChunkResult``); tests inject faults through it.

    Returns:
        The indices of the chunks submitted, in submission order.
    """
    import ray

    if not chunks:
        return []
    initialized_here = _connect(address)
    steps = steps_per_chunk(config, dataset.x_train.shape[0])
    queue = deque(chunks)
    in_flight: dict[Any, MemberChunk] = {}
    submitted: list[int] = []
    try:
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_chunk_task)
        dataset_ref = ray.put(dataset)
        while queue or in_flight:
            room = IN_FLIGHT_PER_CPU * _cluster_cpus() - len(in_flight)
            while queue and room > 0:
                chunk = queue.popleft()
                saved = store.load_checkpoint(experiment_id, chunk.key)
                ref = task.remote(chunk_task, config, chunk, dataset_ref, saved[1] if saved else None)
                in_flight[ref] = chunk
                submitted.append(chunk.index)
                room -= 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                chunk = in_flight.pop(ref)
                commit_chunk(store, experiment_id, chunk, _result(ref, chunk))
                advance(steps)
    finally:
        for ref in in_flight:  # driver interrupted or a chunk failed: stop the rest
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if initialized_here:
            ray.shutdown()
    return submitted


__all__ = ["check_ray", "probe_address", "run_ray", "train_chunk", "INSTALL_HINT", "MAX_RETRIES"]
