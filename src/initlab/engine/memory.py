"""Memory estimates, checked before any work: will this run fit, and how many members at once?

A run that needs more memory than the machine has should stop in a second with one line that
says so, not after minutes of training with an allocator traceback. The estimate is an upper
bound of the same order as what PyTorch allocates, not an exact count; it is made without
allocating anything (the model is built on torch's ``meta`` device, where a forward pass gives
every shape and no data).

API (used by ``compare``, ``study``, ``diagnose`` and ``plan``; reusable by any command):

>>> from initlab.engine.memory import model_footprint, training_estimate, check_fits
>>> fp = model_footprint("mlp", input_shape=(784,), num_classes=10, width=256, depth=2)
>>> est = training_estimate(fp, members=10, batch_size=32, optimizer="sgd", momentum=0.9)
>>> check_fits(est, lower="--chunk-size, --width or --batch-size")   # raises UserError if not

- ``model_footprint(...)`` -> ``Footprint``: parameters and activation elements per sample.
- ``training_estimate`` / ``inference_estimate`` -> ``MemoryEstimate`` (bytes, by part).
- ``available_memory()`` -> ``(bytes, source)``: ``INITLAB_MEMORY_LIMIT`` (e.g. ``"2G"``)
  when set, else the smaller of ``MemAvailable`` (/proc/meminfo) and the cgroup's free room,
  else ``os.sysconf`` available pages.
- ``check_fits(estimate, lower=...)``: ``UserError`` naming the estimate, the limit, and what
  to lower, when the estimate exceeds the limit.
- ``members_that_fit(footprint, cap, ...)``: the largest ensemble (members per cell) whose
  training estimate stays within ``HEADROOM`` of the limit; the sweep's chunk size.

Formulas (``b`` = bytes per element, 4 for float32; ``E`` members; ``P`` parameters of one
member; ``A`` activation elements of one sample summed over every module's output; ``Amax``
the largest single output; ``B`` batch; ``k`` optimizer buffers: 0 plain SGD, 1 SGD with
momentum, 2 Adam):

- parameters ``E·P·b``; gradients ``E·P·b``; optimizer state ``k·E·P·b``;
- checkpoint: a serialized copy of parameters and optimizer state ``(1 + k)·E·P·b``;
- activations: ``2·E·B·A·b`` (outputs kept for backward, and their gradients);
- evaluation: ``2·E·B_eval·Amax·b`` (no graph: two layers alive at a time);
- data: the dataset's tensors, as given.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from initlab.errors import UserError

ENV_LIMIT = "INITLAB_MEMORY_LIMIT"
HEADROOM = 0.75  # a chunk may use this share of the limit: the rest is Python, torch, the OS
BYTES_PER_ELEMENT = 4  # float32
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Footprint:
    """Sizes of one model: ``parameters`` (elements), ``activations`` (elements per sample,
    summed over every module's output) and ``largest_activation`` (the largest one)."""

    parameters: int
    activations: int
    largest_activation: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by part; ``total`` is their sum."""

    parts: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(n for _, n in self.parts)

    def describe(self) -> str:
        """``"41.2 GB (parameters 40.0 GB, ...)"``: the total and its largest parts."""
        parts = sorted((p for p in self.parts if p[1] > 0), key=lambda p: -p[1])[:3]
        return f"{format_bytes(self.total)} ({', '.join(f'{k} {format_bytes(v)}' for k, v in parts)})"


def format_bytes(n: float) -> str:
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_bytes(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1.5g"``, ``"1000000"`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)[iI]?[bB]?\s*", str(text))
    if not match:
        raise UserError(f"{ENV_LIMIT}={text!r} is invalid; allowed: a size such as 2G, 512M or a byte count")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not value > 0:
        raise UserError(f"{ENV_LIMIT}={text!r} is invalid; allowed: a size > 0")
    return int(value)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Free room under a cgroup v2 memory limit (containers), or None without one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as fh:
            current = int(fh.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None


def available_memory() -> tuple[int, str]:
    """``(bytes, where the number comes from)``: the memory a run may use on this machine."""
    text = os.environ.get(ENV_LIMIT)
    if text:
        return parse_bytes(text), ENV_LIMIT
    candidates = [
        (n, src) for n, src in ((_meminfo_available(), "MemAvailable"), (_cgroup_room(), "cgroup")) if n is not None
    ]
    if candidates:
        return min(candidates)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "sysconf"
    except (ValueError, OSError, AttributeError):
        return 2**62, "unknown"


SHAPE_PASS_ON_CPU_BYTES = 64 * 2**20  # models up to 64 MB of tensors take the fast CPU shape pass


def model_footprint(
    spec: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    width: int | None = None,
    depth: int | None = None,
    activation: str = "relu",
    **options: Any,
) -> Footprint:
    """Parameters and activation sizes of a built-in model, without allocating it.

    The model is built on torch's ``meta`` device (shapes only) and run on one sample; any
    module output counts once per sample. A model whose parameters take at most
    ``SHAPE_PASS_ON_CPU_BYTES`` is run on the CPU instead (uninitialized storage, one sample):
    the meta device's Python decompositions cost about a second on their first use in a
    process, a small real forward costs milliseconds and warms the kernels training uses anyway.
    """
    import torch

    from initlab.models import build

    with torch.device("meta"):
        model = build(
            spec,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            width=width,
            depth=depth,
            activation=activation,
            materialize=False,
            **options,
        )
        outputs: list[int] = []

        def record(module, args, output) -> None:
            if isinstance(output, torch.Tensor) and output.dim() >= 1:
                outputs.append(output[0].numel() if output.dim() > 1 else 1)

    parameters = sum(p.numel() for p in model.parameters())
    tensor_bytes = 4 * (parameters + sum(b.numel() for b in model.buffers()))
    device = torch.device("cpu") if tensor_bytes <= SHAPE_PASS_ON_CPU_BYTES else torch.device("meta")
    if device.type == "cpu":
        # not ``model.to_empty``: its ``empty_like`` of a meta tensor runs torch's Python
        # reference, whose first use imports sympy (about 0.6 s of CPU); an empty tensor of the
        # same shape is all the shape pass needs.
        model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        model.eval()
        # on meta, tensors a forward creates itself (positions, masks) must be meta too
        with torch.no_grad(), torch.device(device):
            model(torch.zeros((1, *input_shape)))
    finally:
        for h in handles:
            h.remove()
    return Footprint(parameters, sum(outputs), max(outputs, default=0))


def optimizer_buffers(optimizer: str, momentum: float = 0.0) -> int:
    """State tensors per parameter: Adam 2, SGD with momentum 1, plain SGD 0."""
    return 2 if optimizer == "adam" else (1 if momentum else 0)


def training_estimate(
    fp: Footprint,
    *,
    members: int,
    batch_size: int,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    eval_batch_size: int = 1024,
    data_bytes: int = 0,
    bytes_per_element: int = BYTES_PER_ELEMENT,
) -> MemoryEstimate:
    """Bytes to train ``members`` copies of the model together (formulas in the module docstring)."""
    b, k = bytes_per_element, optimizer_buffers(optimizer, momentum)
    weights = members * fp.parameters * b
    return MemoryEstimate(
        (
            ("parameters", weights),
            ("gradients", weights),
            ("optimizer state", k * weights),
            ("checkpoint", (1 + k) * weights),
            ("activations", 2 * members * batch_size * fp.activations * b),
            ("evaluation", 2 * members * eval_batch_size * fp.largest_activation * b),
            ("data", int(data_bytes)),
        )
    )


def inference_estimate(
    fp: Footprint, *, batch_size: int, backward: bool = True, bytes_per_element: int = BYTES_PER_ELEMENT
) -> MemoryEstimate:
    """Bytes to build one model, initialize it and (``backward``) run one forward and backward
    pass on ``batch_size`` inputs with every output kept (what ``diagnose`` does); with
    ``batch_size=0`` only building and initializing (``plan``)."""
    b = bytes_per_element
    weights = fp.parameters * b
    return MemoryEstimate(
        (
            ("parameters", weights),
            # a scheme draws a tensor in float32, then copies it in: one more weight at a time
            ("initialization", weights if batch_size == 0 else 0),
            ("gradients", weights if backward and batch_size else 0),
            ("activations", (3 if backward else 1) * batch_size * fp.activations * b),
        )
    )


def check_fits(estimate: MemoryEstimate, *, lower: str, what: str = "this run", limit: int | None = None) -> None:
    """Raise ``UserError`` when ``estimate`` exceeds the memory limit, before any work."""
    source = "given"
    if limit is None:
        limit, source = available_memory()
    if estimate.total <= limit:
        return
    raise UserError(
        f"{what} needs about {estimate.describe()}, more than the {format_bytes(limit)} available "
        f"({source}); lower {lower}"
    )


def check_builtin_model(
    spec: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    batch_size: int,
    what: str,
    lower: str,
    backward: bool = True,
    width: int | None = None,
    depth: int | None = None,
    activation: str = "relu",
    **options: Any,
) -> None:
    """Pre-flight for one model (``diagnose``: a forward and backward pass on ``batch_size``
    inputs; ``plan``: ``batch_size=0``, building and initializing only). Models that are not
    built in (``module:function``) are not estimated: building them is the user's code."""
    from initlab.models import architectures

    if spec not in architectures():
        return
    fp = model_footprint(
        spec,
        input_shape=input_shape,
        num_classes=num_classes,
        width=width,
        depth=depth,
        activation=activation,
        **options,
    )
    estimate = inference_estimate(fp, batch_size=batch_size, backward=backward)
    inputs = ("inputs", max(batch_size, 2) * math.prod(input_shape) * BYTES_PER_ELEMENT)
    check_fits(MemoryEstimate((*estimate.parts, inputs)), what=what, lower=lower)


def members_that_fit(fp: Footprint, cap: int, *, limit: int | None = None, **training: Any) -> int:
    """The largest ensemble size in ``1..cap`` whose training estimate stays within ``HEADROOM``
    of the limit; 1 when even one member does not (``check_fits`` then says so)."""
    if limit is None:
        limit, _ = available_memory()
    budget = HEADROOM * limit
    one = training_estimate(fp, members=1, **training).total
    fixed = training_estimate(fp, members=0, **training).total  # the data, shared by all
    per_member = max(1, one - fixed)
    return max(1, min(cap, math.floor((budget - fixed) / per_member)))
