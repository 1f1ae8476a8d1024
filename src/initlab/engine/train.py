"""``train``: all members of an ensemble trained together, with metrics, divergence and resume.

One step of the ensemble is one step of every member: member ``e`` takes its batch from its
own data order, its gradient comes from the backend (``mlp``, ``vmap`` or ``loop``), and one
stacked optimizer update moves every member. Per epoch and member the engine records train and
test metrics; after each epoch it can hand a checkpoint state to the caller.

Reproducibility: member ``e`` with seed ``s`` visits the training set in the order
``randperm(N, generator=derive_generator(s, "data", epoch))`` at each epoch (1-based), a pure
function of (seed, epoch): a resumed run needs no RNG state and redraws exactly what the
uninterrupted run drew. Nothing reads or changes torch's global RNG (model factories and random
modules run inside ``torch.random.fork_rng``). Same config, members, data, backend, machine and
thread count: same bits.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from initlab.engine.config import Member, TrainConfig
from initlab.engine.device import on_device
from initlab.engine.functional import LoopBackend, VmapBackend
from initlab.engine.grouped import GroupedBackend, NotGrouped, has_conv, parse_grouped
from initlab.engine.init import build_template, initial_state, isolated_global_rng
from initlab.engine.losses import summed_loss, targets_per_sample
from initlab.engine.mlp import MLPBackend, NotAnMLP, parse_mlp
from initlab.engine.optim import make_optimizer
from initlab.engine.result import EnsembleResult, EpochRecord, MemberResult
from initlab.errors import UserError
from initlab.seeding import derive_generator

BACKENDS = ("auto", "mlp", "grouped", "vmap", "loop")
CHECKPOINT_FORMAT = "initlab.engine.checkpoint/1"

EpochCallback = Callable[[int, list[EpochRecord]], None]
CheckpointCallback = Callable[[dict[str, Any]], None]
ProgressCallback = Callable[[int, int], None]


class Backend(Protocol):
    name: str

    def loss_and_grads(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        idx: torch.Tensor,
        *,
        epoch: int,
        step: int,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Gradients (trainable parameters, stacked), loss ``(E,)`` and correct count ``(E,)``."""

    def logits(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``(E, b, C)`` eval-mode outputs of every member on the shared inputs ``x``."""


class _Data:
    """The four tensors of a dataset, checked (any object with these attributes will do).

    Targets by ``loss``: ``cross_entropy`` takes int64 class indices, one per sample ``(N,)`` or
    one per position ``(N, T)``; ``mse`` takes float targets ``(N, k)`` or ``(N,)``.
    """

    def __init__(self, data: Any, loss: str = "cross_entropy") -> None:
        missing = [a for a in ("x_train", "y_train", "x_test", "y_test") if not hasattr(data, a)]
        if missing:
            raise UserError(
                f"data must have x_train, y_train, x_test and y_test tensors; "
                f"{type(data).__name__} lacks {', '.join(missing)}"
            )
        for split in ("train", "test"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
                raise UserError(
                    f"data.x_{split} must be a floating tensor (N, *features); got "
                    f"{type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}"
                )
            if loss == "mse":
                if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() not in (1, 2):
                    raise UserError(
                        f"data.y_{split} must be a float tensor (N, k) of targets for loss 'mse'; got "
                        f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
                    )
            elif not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() not in (1, 2):
                raise UserError(
                    f"data.y_{split} must be an int64 tensor (N,) of class indices (or (N, T) per "
                    f"position); got {getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
                )
            if x.shape[0] != y.shape[0]:
                raise UserError(f"data.x_{split} has {x.shape[0]} samples but data.y_{split} has {y.shape[0]}")
            if loss != "mse" and y.numel() and int(y.min()) < 0:
                raise UserError(f"data.y_{split} has a negative label {int(y.min())}")
        if data.x_train.shape[0] == 0:
            raise UserError("data.x_train is empty: nothing to train on")
        if data.x_test.shape[1:] != data.x_train.shape[1:]:
            raise UserError(
                f"data.x_test samples have shape {tuple(data.x_test.shape[1:])}, "
                f"data.x_train samples {tuple(data.x_train.shape[1:])}"
            )
        self.x_train, self.y_train = data.x_train, data.y_train
        self.x_test, self.y_test = data.x_test, data.y_test
        self.loss = loss
        # Optional validation split (``initlab.data.split``): evaluated every epoch like the test set.
        self.x_val, self.y_val = getattr(data, "x_val", None), getattr(data, "y_val", None)
        if (self.x_val is None) != (self.y_val is None):
            raise UserError("data has only one of x_val and y_val; give both or neither")
        if self.x_val is not None and (
            self.x_val.shape[1:] != self.x_train.shape[1:] or self.x_val.shape[0] != self.y_val.shape[0]
        ):
            raise UserError(
                f"data.x_val {tuple(self.x_val.shape)} and data.y_val {tuple(self.y_val.shape)} do not "
                f"match the training samples {tuple(self.x_train.shape[1:])}"
            )
        if loss == "mse":
            for name in ("y_train", "y_test", "y_val"):
                y = getattr(self, name)
                if y is not None and y.dtype != self.x_train.dtype:
                    setattr(self, name, y.to(self.x_train.dtype))
            self.max_label = -1
        else:
            labels = [self.y_train, self.y_test] + ([self.y_val] if self.y_val is not None else [])
            self.max_label = max(int(y.max()) for y in labels if y.numel())

    def to(self, device: torch.device) -> None:
        """Move the tensors to ``device`` (no copy when they are there already)."""
        for name in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """A checkpoint state as bytes (``torch.save``); ``state_from_bytes`` reads it back."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    """Inverse of ``state_to_bytes``; loads tensors and plain data only (``weights_only``), on CPU."""
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"not an initlab engine checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def member_state_dict(state: dict[str, Any], index: int) -> dict[str, torch.Tensor]:
    """Member ``index``'s parameters and buffers from a checkpoint state, as a ``state_dict``."""
    return {n: t[index].clone() for n, t in {**state["params"], **state["buffers"]}.items()}


def load_member(model_factory: Callable[[], nn.Module], state: dict[str, Any], index: int) -> nn.Module:
    """A model from ``model_factory`` holding member ``index``'s trained parameters."""
    model = build_template(model_factory)
    model.load_state_dict(member_state_dict(state, index))
    return model


def _choose_backend(
    requested: str,
    template: nn.Module,
    data: _Data,
    params,
    buffers,
    trainable,
    members: Sequence[Member],
    *,
    autocast: str | None = None,
) -> tuple[Backend, str]:
    """The backend and why it was chosen (for ``auto``: why the faster ones could not run)."""
    if requested not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}; got {requested!r}")
    if requested == "mlp" and autocast is not None:
        raise UserError(
            f"backend 'mlp' computes its gradients by hand in the parameters' dtype; autocast="
            f"{autocast!r} needs 'grouped', 'vmap' or 'loop' (or 'auto')"
        )
    names = list(params)
    reasons = []
    if requested in ("auto", "mlp") and autocast is None:
        try:
            if data.loss != "mse" and data.y_train.dim() != 1:
                raise NotAnMLP("per-position targets need the general backends")
            ops = parse_mlp(template, tuple(data.x_train.shape[1:]))
        except NotAnMLP as exc:
            if requested == "mlp":
                raise UserError(f"backend 'mlp' cannot run this model: {exc}; use 'vmap' or 'loop'") from None
            reasons.append(f"not a plain MLP ({exc})")
        else:
            why = "requested" if requested == "mlp" else "a plain MLP: batched matmuls"
            return MLPBackend(ops, data.x_train, data.y_train, names, loss=data.loss), why
    if requested in ("auto", "grouped"):
        try:
            if data.loss != "cross_entropy" or data.y_train.dim() != 1:
                raise NotGrouped("the grouped path trains classifiers (one class index per sample)")
            ops = parse_grouped(template)
            if requested == "auto" and not has_conv(ops):
                raise NotGrouped("no convolution: the vmap path is as fast")
            backend = GroupedBackend(ops, data.x_train, data.y_train, names, trainable)
            _probe(backend, params, buffers, data)
        except Exception as exc:  # noqa: BLE001  (what it cannot run, vmap or the loop can)
            if requested == "grouped":
                raise UserError(
                    f"backend 'grouped' cannot run this model ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                    f"use 'vmap' or 'loop'"
                ) from exc
            reasons.append(
                f"not grouped ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
            )
        else:
            return backend, "requested" if requested == "grouped" else "convolutions: members as groups"
    args = (template, data.x_train, data.y_train, names, trainable, [m.seed for m in members], data.loss)
    if requested in ("auto", "vmap"):
        try:
            backend = VmapBackend(*args)
            _probe(backend, params, buffers, data)
        except Exception as exc:  # noqa: BLE001  (whatever vmap rejects, the loop handles)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if requested == "vmap":
                raise UserError(
                    f"backend 'vmap' cannot run this model ({type(exc).__name__}: {first}); use 'loop'"
                ) from exc
            reasons.append(f"torch.func.vmap cannot stack it ({type(exc).__name__}: {first[:160]})")
        else:
            return backend, "requested" if requested == "vmap" else "; ".join(reasons + ["vmap runs it"])
    return LoopBackend(*args), "requested" if requested == "loop" else "; ".join(reasons)


def _probe(backend: Backend, params, buffers, data: _Data) -> None:
    """One tiny step and one evaluation on copies: raises if the backend cannot run the model."""
    params = {n: t.clone() for n, t in params.items()}
    buffers = {n: t.clone() for n, t in buffers.items()}
    members = next(iter(params.values())).shape[0]
    idx = torch.zeros((members, min(2, data.x_train.shape[0])), dtype=torch.int64, device=data.x_train.device)
    with isolated_global_rng(data.x_train.device):
        backend.loss_and_grads(params, buffers, idx, epoch=0, step=0)
        backend.logits(params, buffers, data.x_train[:2].clone())


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    """Metric sums in float64, except on MPS, which has no float64 (float32 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def _evaluate(
    backend: Backend,
    params,
    buffers,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    loss: str = "cross_entropy",
    keep: bool = False,
) -> tuple[list[float], list[float], torch.Tensor | None]:
    """Mean loss and accuracy per member over the whole of ``(x, y)`` (accuracy NaN for mse); with
    ``keep``, also the per-example correctness ``(E, n)`` bool on CPU (classification: for paired
    bootstraps over test examples)."""
    members = next(iter(params.values())).shape[0]
    n = x.shape[0]
    if n == 0:
        return [math.nan] * members, [math.nan] * members, None
    acc = _accumulator_dtype(x.device)
    loss_sum = torch.zeros(members, dtype=acc, device=x.device)
    correct = torch.zeros(members, dtype=torch.int64, device=x.device)
    hits = []
    with isolated_global_rng(x.device):
        for start in range(0, n, batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            logits = backend.logits(params, buffers, xb)
            sums, right = summed_loss(logits, yb, loss)
            loss_sum += sums.to(acc)
            correct += right
            if keep:
                hits.append((logits.argmax(dim=-1) == yb).cpu())
    per_sample = targets_per_sample(y, loss)
    accuracy = (correct.to(acc) / (n * per_sample)).tolist() if per_sample else [math.nan] * members
    return (loss_sum / n).tolist(), accuracy, torch.cat(hits, dim=1) if keep else None


def _check_resume(
    state: dict[str, Any], config: TrainConfig, members: Sequence[Member], params_shapes: dict[str, tuple[int, ...]]
) -> None:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"resume_state is not an initlab engine checkpoint (format {CHECKPOINT_FORMAT!r})")
    saved, now = dict(state["config"]), config.to_dict()
    saved.pop("epochs")
    now.pop("epochs")  # a resumed run may go on for more epochs
    changed = [k for k in now if saved.get(k) != now[k]]
    if changed:
        k = changed[0]
        raise UserError(f"resume_state was written with a different config: {k}={saved.get(k)!r}, now {now[k]!r}")
    if config.epochs < state["epoch"]:
        raise UserError(f"resume_state has {state['epoch']} epochs done; config.epochs={config.epochs} is fewer")
    now_members = [m.to_dict() for m in members]
    if state["members"] != now_members:
        raise UserError(
            f"resume_state was written for other members: {[(m['label'], m['seed']) for m in state['members']]}"
            f", now {[(m['label'], m['seed']) for m in now_members]}"
        )
    shapes = {n: tuple(t.shape[1:]) for n, t in state["params"].items()}
    if shapes != params_shapes:
        raise UserError("resume_state parameters do not match the model from model_factory")


@on_device
def train(
    model_factory: Callable[[], nn.Module],
    members: Sequence[Member | tuple[Any, int]],
    data: Any,
    config: TrainConfig,
    *,
    backend: str = "auto",
    on_epoch: EpochCallback | None = None,
    checkpoint: CheckpointCallback | None = None,
    resume_state: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
    autocast: str | None = None,
    keep_correct: Sequence[int] = (),
) -> EnsembleResult:
    """Train every member of an ensemble together and return their histories.

    Args:
        model_factory: builds one model (called once per member, and once for a template);
            whatever it draws from the global RNG is discarded: members are initialized by scheme.
        members: ``Member(scheme, seed)`` (or ``(scheme, seed)`` pairs); a scheme may be a
            callable ``init(model, seed)``.
        data: any object with tensors ``x_train (N, *features)`` float, ``y_train (N,)`` int64,
            ``x_test``, ``y_test`` (``initlab.data.Dataset``); kept on its device, batches indexed
            from it directly.
        config: a ``TrainConfig``.
        backend: ``"mlp"`` (batched matmuls, hand-written gradients; Sequential of Flatten,
            Linear and element-wise activations), ``"grouped"`` (convolutional models: members as
            the groups of grouped convolutions, ``initlab.engine.grouped``), ``"vmap"`` (torch.func, any model it can
            transform), ``"loop"`` (one member at a time; anything), or ``"auto"``: the first that
            runs the model, in that order (when resuming: the checkpoint's backend).
        on_epoch: called as ``on_epoch(epoch, records)`` after each epoch (and its checkpoint),
            with one ``EpochRecord`` per member, in member order.
        checkpoint: called with the state after each epoch: a dict of tensors and plain data
            (``state_to_bytes`` serializes it); pass it back as ``resume_state`` to continue.
        resume_state: a state from ``checkpoint`` (same config except ``epochs``, same members
            and model): training continues after its epoch and ends bit for bit where the
            uninterrupted run would (times aside).
        progress: called as ``progress(steps_done, steps_total)`` after every ensemble step.
        device: where to train: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` or a ``torch.device``; data, members and optimizer state move
            there (checkpoint states stay on CPU). ``None``: where ``data.x_train`` lies. A
            device this machine lacks is a ``UserError``. On CUDA the call runs with torch's
            deterministic algorithms and without TF32 (``initlab.engine.device.reproducible``).
        autocast: ``None`` (float32 throughout) or ``"bf16"``: the training step's forward runs
            under ``torch.autocast(dtype=torch.bfloat16)`` (matmuls and convolutions in bfloat16,
            losses, parameters, gradients, optimizer state and evaluation in float32); the
            ``mlp`` path is then not used (its gradients are written by hand in float32).
        keep_correct: epochs after which each member's per-example test correctness is kept
            (``MemberResult.test_correct[epoch]``, a bool tensor over the test set); kept in the
            checkpoint state too, so a resumed run returns them all.

    With ``data.x_val``/``data.y_val`` (a validation split, ``initlab.data.split``) every epoch
    also records ``val_loss``/``val_acc``; nothing is ever selected on test data here.

    Returns:
        ``EnsembleResult`` with one ``MemberResult`` per member.

    Raises:
        UserError: bad config, members, data, backend or resume state.
    """
    if not isinstance(config, TrainConfig):
        raise UserError(f"config must be a TrainConfig; got {type(config).__name__}")
    members = [m if isinstance(m, Member) else Member(*m) for m in members]
    if not members:
        raise UserError("members is empty: give at least one Member(scheme, seed)")
    if autocast not in (None, "bf16"):
        raise UserError(f"autocast must be None or 'bf16'; got {autocast!r}")
    data = _Data(data, config.loss)
    if device is None:
        device = data.x_train.device
    data.to(device)
    template = build_template(model_factory).to(device)
    dtype = next(template.parameters()).dtype
    if data.x_train.dtype != dtype:
        data.x_train, data.x_test = data.x_train.to(dtype), data.x_test.to(dtype)
    if config.loss == "mse" and data.y_train.dtype != dtype:
        data.y_train, data.y_test = data.y_train.to(dtype), data.y_test.to(dtype)
    shapes = {n: tuple(p.shape) for n, p in template.named_parameters()}
    trainable = [n for n, p in template.named_parameters() if p.requires_grad]
    if not trainable:
        raise UserError("the model has no trainable parameters (all requires_grad=False)")
    with torch.no_grad(), isolated_global_rng(device):
        out_shape = tuple(template.eval()(data.x_train[:1].clone()).shape)  # clone: in-place modules
    if config.loss == "mse":
        if math.prod(out_shape[1:]) != math.prod(data.y_train.shape[1:]):
            raise UserError(
                f"the model outputs {out_shape[1:]} per sample but the targets have shape "
                f"{tuple(data.y_train.shape[1:])}"
            )
    elif data.max_label >= out_shape[-1]:
        raise UserError(f"the model outputs {out_shape[-1]} classes but the data has label {data.max_label}")

    n_members = len(members)
    if resume_state is not None:
        _check_resume(resume_state, config, members, shapes)
        params = {n: t.to(device).clone() for n, t in resume_state["params"].items()}
        buffers = {n: t.to(device).clone() for n, t in resume_state["buffers"].items()}
        if backend == "auto":
            backend = resume_state["backend"]
        elif backend != resume_state["backend"]:
            raise UserError(f"resume_state was trained with backend {resume_state['backend']!r}; got {backend!r}")
        if resume_state.get("autocast") != autocast:
            raise UserError(
                f"resume_state was trained with autocast={resume_state.get('autocast')!r}; got {autocast!r}"
            )
    else:
        params, buffers = initial_state(model_factory, members, bias_init=config.bias_init, device=device, dtype=dtype)
    impl, backend_reason = _choose_backend(
        backend, template, data, params, buffers, trainable, members, autocast=autocast
    )
    if resume_state is not None:  # a resumed run keeps the reason its first part chose the backend for
        backend_reason = resume_state.get("backend_reason", backend_reason)
    optimizer = make_optimizer(
        [params[n] for n in trainable],
        config,
        lrs=[m.lr for m in members] if any(m.lr is not None for m in members) else None,
        weight_decays=[m.weight_decay for m in members] if any(m.weight_decay is not None for m in members) else None,
    )

    records: list[list[EpochRecord]] = [[] for _ in members]
    kept: dict[int, torch.Tensor] = {}  # epoch -> (E, n_test) per-example test correctness
    diverged_step: list[int | None] = [None] * n_members
    start_epoch, global_step, time_before = 0, 0, 0.0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        records = [[EpochRecord(**r) for r in recs] for recs in resume_state["records"]]
        diverged_step = list(resume_state["diverged_step"])
        start_epoch, global_step = int(resume_state["epoch"]), int(resume_state["step"])
        time_before = float(resume_state["wall_time"])
        kept = {int(k): v.clone() for k, v in resume_state.get("correct", {}).items()}
    else:
        for e in range(n_members):  # a non-finite initialization diverges before the first step
            if not all(bool(torch.isfinite(t[e]).all()) for t in params.values()):
                diverged_step[e] = 0

    # Diverged members are frozen: their gradients are zeroed and their parameters and buffers
    # are put back after every update. ``watched`` lists the tensors restored, ``frozen`` the rows.
    watched = list(params.values()) + list(buffers.values())
    alive = torch.tensor([s is None for s in diverged_step], device=device)
    frozen_rows: dict[int, list[torch.Tensor]] = {}
    dead_idx: torch.Tensor | None = None
    frozen: list[torch.Tensor] = []

    def freeze(new: list[int], buffers_before: dict[str, torch.Tensor] | None) -> None:
        nonlocal dead_idx, frozen
        sources = list(params.values()) + list((buffers if buffers_before is None else buffers_before).values())
        for e in new:
            frozen_rows[e] = [t[e].clone() for t in sources]
        dead = sorted(frozen_rows)
        dead_idx = torch.tensor(dead, dtype=torch.int64, device=device)
        frozen = [torch.stack([frozen_rows[e][j] for e in dead]) for j in range(len(sources))]

    if not bool(alive.all()):
        freeze([e for e, s in enumerate(diverged_step) if s is not None], None)

    n_train, batch = data.x_train.shape[0], config.batch_size
    per_sample = max(1, targets_per_sample(data.y_train, config.loss))  # targets counted per sample
    steps_per_epoch = math.ceil(n_train / batch)
    total_steps = steps_per_epoch * config.epochs
    started = time.perf_counter()
    final_state: dict[str, Any] | None = None

    def make_state(epoch: int, wall: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "step": global_step,
            "backend": impl.name,
            "backend_reason": backend_reason,
            "config": config.to_dict(),
            "members": [m.to_dict() for m in members],
            "params": {n: t.detach().to("cpu", copy=True) for n, t in params.items()},
            "buffers": {n: t.detach().to("cpu", copy=True) for n, t in buffers.items()},
            "optimizer": _cpu(optimizer.state_dict()),
            "diverged_step": list(diverged_step),
            "records": [[r.to_dict() for r in recs] for recs in records],
            "wall_time": wall,
            "correct": {int(k): v.clone() for k, v in kept.items()},
            "torch_version": str(torch.__version__),
            "device": str(device),
            "autocast": autocast,
        }

    for epoch in range(start_epoch + 1, config.epochs + 1):
        order = torch.stack(
            [torch.randperm(n_train, generator=derive_generator(m.seed, "data", epoch)) for m in members]
        ).to(device)
        loss_sum = torch.zeros(n_members, dtype=_accumulator_dtype(device), device=device)
        correct_sum = torch.zeros(n_members, dtype=torch.int64, device=device)
        seen = torch.zeros(n_members, dtype=torch.int64, device=device)
        for k in range(steps_per_epoch):
            idx = order[:, k * batch : (k + 1) * batch]
            size = idx.shape[1]
            buffers_before = {n: t.clone() for n, t in buffers.items()} if buffers else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast is not None):
                grads, loss, correct = impl.loss_and_grads(params, buffers, idx, epoch=epoch, step=global_step + 1)
            global_step += 1
            # A sum is NaN/inf when any term is (or when it overflows: a gradient that large diverged).
            grad_sum = grads[0].reshape(n_members, -1).sum(dim=1)
            for g in grads[1:]:
                grad_sum += g.reshape(n_members, -1).sum(dim=1)
            finite = torch.isfinite(loss) & torch.isfinite(grad_sum)
            if dead_idx is None and bool(finite.all()):
                loss_sum.add_(loss, alpha=size)
                correct_sum.add_(correct)
                seen.add_(size * per_sample)
                optimizer.step(grads)
            else:
                newly = (alive & ~finite).nonzero().flatten().tolist()
                if newly:
                    for e in newly:
                        diverged_step[e] = global_step
                    alive &= finite
                    freeze(newly, buffers_before)
                for g in grads:
                    g.index_fill_(0, dead_idx, 0.0)
                loss_sum.add_(torch.where(alive, loss.to(loss_sum.dtype), 0.0), alpha=size)
                correct_sum.add_(torch.where(alive, correct, 0))
                seen.add_(alive.long() * size * per_sample)
                optimizer.step(grads)
                for t, rows in zip(watched, frozen):
                    t.index_copy_(0, dead_idx, rows)
            if progress is not None:
                progress(global_step, total_steps)

        keep = epoch in keep_correct and config.loss != "mse" and data.y_test.dim() == 1
        test_loss, test_acc, hits = _evaluate(
            impl, params, buffers, data.x_test, data.y_test, config.eval_batch_size, config.loss, keep=keep
        )
        if hits is not None:
            kept[epoch] = hits
        val_loss = val_acc = [math.nan] * n_members
        if data.x_val is not None:
            val_loss, val_acc, _ = _evaluate(
                impl, params, buffers, data.x_val, data.y_val, config.eval_batch_size, config.loss
            )
        seen_list = seen.tolist()
        train_loss = [s * per_sample / c if c else math.nan for s, c in zip(loss_sum.tolist(), seen_list)]
        train_acc = [s / c if c and config.loss != "mse" else math.nan for s, c in zip(correct_sum.tolist(), seen_list)]
        wall = time_before + time.perf_counter() - started
        epoch_records = []
        for e in range(n_members):
            record = EpochRecord(
                epoch,
                global_step,
                train_loss[e],
                train_acc[e],
                test_loss[e],
                test_acc[e],
                wall,
                val_loss[e],
                val_acc[e],
            )
            records[e].append(record)
            epoch_records.append(record)
        if checkpoint is not None or epoch == config.epochs:
            final_state = make_state(epoch, wall)
            if checkpoint is not None:
                checkpoint(final_state)
        if on_epoch is not None:
            on_epoch(epoch, epoch_records)

    if final_state is None:  # resumed with every epoch already done
        final_state = make_state(start_epoch, time_before)
    return EnsembleResult(
        members=tuple(
            MemberResult(
                member=m,
                records=tuple(records[e]),
                status="ok" if diverged_step[e] is None else "diverged",
                diverged_step=diverged_step[e],
                steps_to_target=_steps_to_target(records[e], config.target),
                test_correct={k: v[e] for k, v in sorted(kept.items())},
            )
            for e, m in enumerate(members)
        ),
        config=config,
        backend=impl.name,
        backend_reason=backend_reason,
        wall_time=final_state["wall_time"],
        steps_per_epoch=steps_per_epoch,
        resumed_from_epoch=start_epoch if resume_state is not None else None,
        state=final_state,
    )


def _steps_to_target(records: Sequence[EpochRecord], target: float | None) -> int | None:
    if target is None:
        return None
    return next((r.step for r in records if r.test_acc >= target), None)


def _cpu(obj: Any) -> Any:
    """``obj`` (already a copy: ``StackedOptimizer.state_dict`` clones) with its tensors on CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj
