"""Where an ensemble trains: ``device="auto"|"cpu"|"cuda"|"cuda:N"|"mps"``, checked before any work.

``resolve_device`` turns a user's device string into a ``torch.device`` that exists on this
machine, or raises ``UserError`` naming the value and what is allowed, so a run that cannot
happen is refused before it starts. ``auto`` is the first CUDA device when torch sees one, else
the CPU (MPS is taken only when asked for: it lacks float64, which the engine's metrics use).

``reproducible(device)`` is the context the engine trains in. On CPU it changes nothing (so CPU
results are bit for bit what they were before devices existed). On CUDA it asks torch for its
deterministic algorithms (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN
``deterministic=True, benchmark=False``) and turns TF32 off for matmuls and convolutions, so a
float32 run is float32 and rerunning it on the same GPU, driver and torch gives the same bits
wherever torch has a deterministic kernel (see docs/engine.md, "Devices and reproducibility");
every setting is put back afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch

from initlab.errors import UserError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_ALLOWED = "auto, cpu, cuda, cuda:N (N a GPU index) or mps"
# cuBLAS is deterministic only with a fixed workspace (torch's "Reproducibility" notes); the
# variable must be set before cuBLAS first runs, so it is set when a CUDA device is chosen.
_CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The ``torch.device`` for ``spec``; ``None`` and ``"auto"``: CUDA if available, else CPU.

    Raises ``UserError`` for a malformed name (``tpu``), a backend this machine lacks (``cuda``
    without a GPU) or an index past the last device (``cuda:7`` on a one-GPU machine).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    elif isinstance(spec, torch.device):
        device = spec
    elif isinstance(spec, str):
        try:
            device = torch.device(spec.strip().lower())
        except (RuntimeError, ValueError):
            raise UserError(f"device must be {_ALLOWED}; got {spec!r}") from None
    else:
        raise UserError(f"device must be a string ({_ALLOWED}); got {spec!r}")
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {str(spec)!r}: torch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use cpu or auto"
            )
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise UserError(
                f"device {str(spec)!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
        return torch.device("cuda", index)
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"device {str(spec)!r}: MPS (Apple GPU) is not available on this machine; use cpu or auto")
        return torch.device("mps")
    raise UserError(f"device must be {_ALLOWED}; got {spec!r}")


def check_device(spec: str | None) -> str:
    """``spec`` validated (as ``resolve_device`` does) and returned unchanged: for configs and CLIs."""
    resolve_device(spec)
    return "auto" if spec is None else spec


@contextlib.contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """Deterministic kernels and no TF32 on CUDA for the block; a no-op elsewhere (module doc)."""
    if device.type != "cuda":
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.cuda.device(device):
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[4], saved[5]


def on_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for ``train``: resolve its ``device`` keyword (a ``UserError`` before any work when
    the device does not exist) and run the call in ``reproducible(device)`` (the data's device when
    ``device`` is None): deterministic kernels on CUDA, nothing changed on CPU."""

    @functools.wraps(fn)
    def wrapper(*args: Any, device: str | torch.device | None = None, **kwargs: Any) -> Any:
        resolved = None if device is None else resolve_device(device)
        data = kwargs["data"] if "data" in kwargs else args[2] if len(args) > 2 else None
        where = (
            resolved if resolved is not None else getattr(getattr(data, "x_train", None), "device", torch.device("cpu"))
        )
        with reproducible(where):
            return fn(*args, device=resolved, **kwargs)

    return wrapper
