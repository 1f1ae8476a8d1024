"""The engine's checkpoint state: its format, bytes, one member's parameters, resume checks.

A state is a dict of tensors (on CPU) and plain data, written by ``train`` after an epoch
(``checkpoint=``) and passed back as ``resume_state`` to continue bit for bit.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.engine.config import Member, TrainConfig
from initlab.engine.init import build_template
from initlab.engine.result import EpochRecord
from initlab.errors import UserError

CHECKPOINT_FORMAT = "initlab.engine.checkpoint/1"


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


def check_resume(
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


def cpu_copy(obj: Any) -> Any:
    """``obj`` (already a copy: ``StackedOptimizer.state_dict`` clones) with its tensors on CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [cpu_copy(v) for v in obj]
    return obj


@dataclass
class TrainingHistory:
    """What the epochs so far left: records, divergences, kept correctness, epoch, step, time."""

    records: list[list[EpochRecord]]
    diverged_step: list[int | None]
    kept: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> (E, n_test) test correctness
    epoch: int = 0
    step: int = 0
    wall_time: float = 0.0

    @classmethod
    def start(
        cls, n_members: int, params: dict[str, torch.Tensor], resume_state: dict[str, Any] | None, optimizer: Any
    ) -> TrainingHistory:
        """From ``resume_state`` (its optimizer state loaded into ``optimizer``), or fresh: then a
        member with a non-finite initial parameter has diverged at step 0."""
        if resume_state is not None:
            optimizer.load_state_dict(resume_state["optimizer"])
            return cls(
                records=[[EpochRecord(**r) for r in recs] for recs in resume_state["records"]],
                diverged_step=list(resume_state["diverged_step"]),
                kept={int(k): v.clone() for k, v in resume_state.get("correct", {}).items()},
                epoch=int(resume_state["epoch"]),
                step=int(resume_state["step"]),
                wall_time=float(resume_state["wall_time"]),
            )
        diverged_step: list[int | None] = [None] * n_members
        for e in range(n_members):  # a non-finite initialization diverges before the first step
            if not all(bool(torch.isfinite(t[e]).all()) for t in params.values()):
                diverged_step[e] = 0
        return cls(records=[[] for _ in range(n_members)], diverged_step=diverged_step)


def checkpoint_state(
    epoch: int,
    step: int,
    wall: float,
    history: TrainingHistory,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    config: TrainConfig,
    members: Sequence[Member],
    *,
    backend: str,
    backend_reason: str,
    device: torch.device,
    autocast: str | None,
) -> dict[str, Any]:
    """The state after ``epoch``: tensors copied to CPU, the history so far, what a resume checks."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": step,
        "backend": backend,
        "backend_reason": backend_reason,
        "config": config.to_dict(),
        "members": [m.to_dict() for m in members],
        "params": {n: t.detach().to("cpu", copy=True) for n, t in params.items()},
        "buffers": {n: t.detach().to("cpu", copy=True) for n, t in buffers.items()},
        "optimizer": cpu_copy(optimizer_state),
        "diverged_step": list(history.diverged_step),
        "records": [[r.to_dict() for r in recs] for recs in history.records],
        "wall_time": wall,
        "correct": {int(k): v.clone() for k, v in history.kept.items()},
        "torch_version": str(torch.__version__),
        "device": str(device),
        "autocast": autocast,
    }
