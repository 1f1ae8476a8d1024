"""What training returns: per-epoch records per member, a summary per member, the ensemble."""

from __future__ import annotations

import base64
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from initlab.engine.config import Member, TrainConfig


def pack_correct(hits: Any) -> str:
    """A bool vector (tensor or array) as base64 of its packed bits."""
    import numpy as np

    array = np.asarray(hits.cpu().numpy() if hasattr(hits, "cpu") else hits, dtype=bool)
    return base64.b64encode(np.packbits(array).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> Any:
    """Inverse of ``pack_correct`` for a vector of ``n`` examples: a numpy bool array."""
    import numpy as np

    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:n].astype(bool)


@dataclass(frozen=True)
class EpochRecord:
    """One member after one epoch.

    ``step`` counts optimizer steps of the ensemble since the start (the same for every member).
    ``train_loss``/``train_acc`` average over the samples of the epoch's steps the member took
    (mean batch loss weighted by batch size; the fraction of those samples classified right);
    NaN when it took none (it had diverged before). ``test_loss``/``test_acc``: the full test set
    with the parameters at the end of the epoch (a diverged member's frozen ones). ``wall_time``:
    seconds since training started, for the whole ensemble (members train together), counting the
    time before a resume. ``val_loss``/``val_acc``: the validation split (NaN without one), the
    only accuracy a learning rate may be selected on.
    """

    epoch: int
    step: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    wall_time: float
    val_loss: float = math.nan
    val_acc: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MemberResult:
    """A member's history and outcome.

    ``status`` is ``"diverged"`` when a training loss or gradient turned NaN/inf (or a parameter
    was not finite at initialization, ``diverged_step == 0``); the member then stopped updating
    at ``diverged_step`` (the 1-based step whose loss or gradient was not finite) and kept the
    parameters it had before that step. ``steps_to_target``: the step of the first epoch whose
    test accuracy reached ``TrainConfig.target`` (None: never, or no target). ``test_correct``:
    epoch -> bool tensor over the test set (example i classified right), for the epochs asked
    for with ``train(keep_correct=...)``.
    """

    member: Member
    records: tuple[EpochRecord, ...]
    status: str
    diverged_step: int | None
    steps_to_target: int | None
    test_correct: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        return self.member.label

    @property
    def seed(self) -> int:
        return self.member.seed

    @property
    def test_acc(self) -> float:
        return self.records[-1].test_acc if self.records else math.nan

    @property
    def test_loss(self) -> float:
        return self.records[-1].test_loss if self.records else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.member.to_dict(),
            "status": self.status,
            "diverged_step": self.diverged_step,
            "steps_to_target": self.steps_to_target,
            "test_acc": self.test_acc,
            "test_loss": self.test_loss,
            "records": [r.to_dict() for r in self.records],
        }


@dataclass(frozen=True)
class EnsembleResult:
    """Every member's result, in the order of ``members``; ``state`` is the final checkpoint state.

    ``state`` has the trained stacked parameters (``initlab.engine.member_state_dict`` extracts one
    member's ``state_dict``) and can be passed back as ``resume_state`` with more epochs.
    """

    members: tuple[MemberResult, ...]
    config: TrainConfig
    backend: str
    wall_time: float  # seconds, all epochs, including those before a resume
    steps_per_epoch: int
    resumed_from_epoch: int | None = None
    backend_reason: str = ""  # why this backend ran the model (auto: why faster ones could not)
    state: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int) -> MemberResult:
        return self.members[i]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "wall_time": self.wall_time,
            "steps_per_epoch": self.steps_per_epoch,
            "resumed_from_epoch": self.resumed_from_epoch,
            "members": [m.to_dict() for m in self.members],
        }
