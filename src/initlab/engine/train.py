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

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from initlab.engine.backends import BACKENDS, Backend, choose_backend
from initlab.engine.config import Member, TrainConfig
from initlab.engine.device import on_device
from initlab.engine.evaluate import accumulator_dtype, evaluate
from initlab.engine.init import build_template, initial_state, isolated_global_rng
from initlab.engine.losses import targets_per_sample
from initlab.engine.optim import make_optimizer
from initlab.engine.result import EnsembleResult, EpochRecord, MemberResult
from initlab.engine.state import (
    CHECKPOINT_FORMAT,
    TrainingHistory,
    check_resume,
    checkpoint_state,
    load_member,
    member_state_dict,
    state_from_bytes,
    state_to_bytes,
)
from initlab.engine.train_data import TrainData
from initlab.errors import UserError
from initlab.seeding import derive_generator

EpochCallback = Callable[[int, list[EpochRecord]], None]
CheckpointCallback = Callable[[dict[str, Any]], None]
ProgressCallback = Callable[[int, int], None]


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
    members, data = _checked_inputs(config, members, data, autocast)
    if device is None:
        device = data.x_train.device
    template, shapes, trainable, dtype = _prepare(model_factory, data, config, device)
    n_members = len(members)
    if resume_state is not None:
        backend = _check_resume_backend(resume_state, config, members, shapes, backend, autocast)
    params, buffers = _starting_tensors(model_factory, members, config, resume_state, device, dtype)
    impl, backend_reason = choose_backend(
        backend, template, data, params, buffers, trainable, members, autocast=autocast
    )
    if resume_state is not None:  # a resumed run keeps the reason its first part chose the backend for
        backend_reason = resume_state.get("backend_reason", backend_reason)
    optimizer = _optimizer(params, trainable, config, members)
    history = TrainingHistory.start(n_members, params, resume_state, optimizer)
    diverged_step, records, kept = history.diverged_step, history.records, history.kept

    # Diverged members are frozen: their gradients are zeroed and their parameters and buffers
    # are put back after every update.
    alive = torch.tensor([s is None for s in diverged_step], device=device)
    frozen = _FrozenMembers(params, buffers, device)
    if not bool(alive.all()):
        frozen.add([e for e, s in enumerate(diverged_step) if s is not None], None)

    n_train, batch = data.x_train.shape[0], config.batch_size
    per_sample = max(1, targets_per_sample(data.y_train, config.loss))  # targets counted per sample
    steps_per_epoch = math.ceil(n_train / batch)
    total_steps = steps_per_epoch * config.epochs
    global_step = history.step
    started = time.perf_counter()
    final_state: dict[str, Any] | None = None

    def make_state(epoch: int, wall: float) -> dict[str, Any]:
        return checkpoint_state(
            epoch,
            global_step,
            wall,
            history,
            params,
            buffers,
            optimizer.state_dict(),
            config,
            members,
            backend=impl.name,
            backend_reason=backend_reason,
            device=device,
            autocast=autocast,
        )

    for epoch in range(history.epoch + 1, config.epochs + 1):
        order = torch.stack(
            [torch.randperm(n_train, generator=derive_generator(m.seed, "data", epoch)) for m in members]
        ).to(device)
        loss_sum = torch.zeros(n_members, dtype=accumulator_dtype(device), device=device)
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
            if frozen.dead_idx is None and bool(finite.all()):
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
                    frozen.add(newly, buffers_before)
                for g in grads:
                    g.index_fill_(0, frozen.dead_idx, 0.0)
                loss_sum.add_(torch.where(alive, loss.to(loss_sum.dtype), 0.0), alpha=size)
                correct_sum.add_(torch.where(alive, correct, 0))
                seen.add_(alive.long() * size * per_sample)
                optimizer.step(grads)
                frozen.restore()
            if progress is not None:
                progress(global_step, total_steps)

        wall = history.wall_time + time.perf_counter() - started
        train_sums = (loss_sum.tolist(), correct_sum.tolist(), seen.tolist(), per_sample)
        epoch_records = _end_of_epoch(
            impl,
            params,
            buffers,
            data,
            config,
            epoch,
            global_step,
            wall,
            train_sums,
            keep=epoch in keep_correct,
            kept=kept,
        )
        for e, record in enumerate(epoch_records):
            records[e].append(record)
        if checkpoint is not None or epoch == config.epochs:
            final_state = make_state(epoch, wall)
            if checkpoint is not None:
                checkpoint(final_state)
        if on_epoch is not None:
            on_epoch(epoch, epoch_records)

    if final_state is None:  # resumed with every epoch already done
        final_state = make_state(history.epoch, history.wall_time)
    return _result(
        members,
        history,
        config,
        impl.name,
        backend_reason,
        final_state,
        steps_per_epoch,
        resumed_from_epoch=history.epoch if resume_state is not None else None,
    )


def _checked_inputs(
    config: TrainConfig, members: Sequence[Member | tuple[Any, int]], data: Any, autocast: str | None
) -> tuple[list[Member], TrainData]:
    """``train``'s arguments checked: the members as ``Member``s and the data as ``TrainData``."""
    if not isinstance(config, TrainConfig):
        raise UserError(f"config must be a TrainConfig; got {type(config).__name__}")
    members = [m if isinstance(m, Member) else Member(*m) for m in members]
    if not members:
        raise UserError("members is empty: give at least one Member(scheme, seed)")
    if autocast not in (None, "bf16"):
        raise UserError(f"autocast must be None or 'bf16'; got {autocast!r}")
    return members, TrainData(data, config.loss)


def _prepare(
    model_factory: Callable[[], nn.Module], data: TrainData, config: TrainConfig, device: torch.device
) -> tuple[nn.Module, dict[str, tuple[int, ...]], list[str], torch.dtype]:
    """Data moved to ``device`` in the model's dtype, and the template model on ``device``, checked
    against the data: ``(template, parameter shapes, trainable names, dtype)``."""
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
    return template, shapes, trainable, dtype


def _starting_tensors(
    model_factory: Callable[[], nn.Module],
    members: Sequence[Member],
    config: TrainConfig,
    resume_state: dict[str, Any] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stacked ``(params, buffers)`` on ``device``: the checkpoint's, or each member initialized."""
    if resume_state is not None:
        params = {n: t.to(device).clone() for n, t in resume_state["params"].items()}
        buffers = {n: t.to(device).clone() for n, t in resume_state["buffers"].items()}
        return params, buffers
    return initial_state(model_factory, members, bias_init=config.bias_init, device=device, dtype=dtype)


def _optimizer(
    params: dict[str, torch.Tensor], trainable: list[str], config: TrainConfig, members: Sequence[Member]
) -> Any:
    """One stacked optimizer over the trainable parameters; members may carry their own lr and decay."""
    return make_optimizer(
        [params[n] for n in trainable],
        config,
        lrs=[m.lr for m in members] if any(m.lr is not None for m in members) else None,
        weight_decays=[m.weight_decay for m in members] if any(m.weight_decay is not None for m in members) else None,
    )


def _check_resume_backend(
    state: dict[str, Any],
    config: TrainConfig,
    members: Sequence[Member],
    shapes: dict[str, tuple[int, ...]],
    backend: str,
    autocast: str | None,
) -> str:
    """The backend a resumed run uses (the checkpoint's), after checking the state fits this call."""
    check_resume(state, config, members, shapes)
    if backend == "auto":
        backend = state["backend"]
    elif backend != state["backend"]:
        raise UserError(f"resume_state was trained with backend {state['backend']!r}; got {backend!r}")
    if state.get("autocast") != autocast:
        raise UserError(f"resume_state was trained with autocast={state.get('autocast')!r}; got {autocast!r}")
    return backend


class _FrozenMembers:
    """The rows of diverged members: kept as they were before the step that diverged, put back
    into every parameter and buffer after each update (``restore``)."""

    def __init__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], device: torch.device) -> None:
        self.params, self.buffers, self.device = params, buffers, device
        self.watched = list(params.values()) + list(buffers.values())
        self.rows: dict[int, list[torch.Tensor]] = {}
        self.dead_idx: torch.Tensor | None = None
        self.frozen: list[torch.Tensor] = []

    def add(self, new: list[int], buffers_before: dict[str, torch.Tensor] | None) -> None:
        sources = list(self.params.values()) + list(
            (self.buffers if buffers_before is None else buffers_before).values()
        )
        for e in new:
            self.rows[e] = [t[e].clone() for t in sources]
        dead = sorted(self.rows)
        self.dead_idx = torch.tensor(dead, dtype=torch.int64, device=self.device)
        self.frozen = [torch.stack([self.rows[e][j] for e in dead]) for j in range(len(sources))]

    def restore(self) -> None:
        for t, rows in zip(self.watched, self.frozen):
            t.index_copy_(0, self.dead_idx, rows)


def _end_of_epoch(
    impl: Backend,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    data: TrainData,
    config: TrainConfig,
    epoch: int,
    step: int,
    wall: float,
    train_sums: tuple[list[float], list[int], list[int], int],
    *,
    keep: bool,
    kept: dict[int, torch.Tensor],
) -> list[EpochRecord]:
    """One ``EpochRecord`` per member: the epoch's training sums (loss, correct, targets seen,
    targets per sample) averaged, the test (and validation) set evaluated. With ``keep`` (and a
    classifier with one target per sample) the per-example test correctness goes into ``kept``."""
    n_members = len(train_sums[0])
    keep = keep and config.loss != "mse" and data.y_test.dim() == 1
    test_loss, test_acc, hits = evaluate(
        impl, params, buffers, data.x_test, data.y_test, config.eval_batch_size, config.loss, keep=keep
    )
    if hits is not None:
        kept[epoch] = hits
    val_loss = val_acc = [math.nan] * n_members
    if data.x_val is not None:
        val_loss, val_acc, _ = evaluate(
            impl, params, buffers, data.x_val, data.y_val, config.eval_batch_size, config.loss
        )
    loss_sums, correct_sums, seen, per_sample = train_sums
    train_loss = [s * per_sample / c if c else math.nan for s, c in zip(loss_sums, seen)]
    train_acc = [s / c if c and config.loss != "mse" else math.nan for s, c in zip(correct_sums, seen)]
    return [
        EpochRecord(epoch, step, train_loss[e], train_acc[e], test_loss[e], test_acc[e], wall, val_loss[e], val_acc[e])
        for e in range(n_members)
    ]


def _result(
    members: Sequence[Member],
    history: TrainingHistory,
    config: TrainConfig,
    backend: str,
    backend_reason: str,
    final_state: dict[str, Any],
    steps_per_epoch: int,
    *,
    resumed_from_epoch: int | None,
) -> EnsembleResult:
    """The ``EnsembleResult``: each member's records, status and steps to the target."""
    records, diverged_step, kept = history.records, history.diverged_step, history.kept
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
        backend=backend,
        backend_reason=backend_reason,
        wall_time=final_state["wall_time"],
        steps_per_epoch=steps_per_epoch,
        resumed_from_epoch=resumed_from_epoch,
        state=final_state,
    )


def _steps_to_target(records: Sequence[EpochRecord], target: float | None) -> int | None:
    if target is None:
        return None
    return next((r.step for r in records if r.test_acc >= target), None)


# BACKENDS, CHECKPOINT_FORMAT and the state helpers stay importable from here, where they were.
__all__ = [
    "BACKENDS",
    "CHECKPOINT_FORMAT",
    "load_member",
    "member_state_dict",
    "state_from_bytes",
    "state_to_bytes",
    "train",
]
