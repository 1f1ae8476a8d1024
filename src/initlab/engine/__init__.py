"""Ensemble training: many (scheme, seed) members of one model trained together, reproducibly.

>>> from initlab.engine import Member, TrainConfig, train
>>> result = train(lambda: mlp(64, 10, 128, 2), [Member("he_normal", s) for s in range(10)],
...                data, TrainConfig(epochs=5, lr=0.05))                      # doctest: +SKIP
>>> [m.test_acc for m in result.members]                                   # doctest: +SKIP

Members may carry their own learning rate and weight decay (``Member(scheme, seed, lr=...,
weight_decay=...)``; None: the ``TrainConfig`` value), so one ensemble trains a learning-rate
grid; a member of a mixed-rate ensemble ends where it would alone (``initlab.engine.optim``).

See ``docs/engine.md`` for the design, the backends and the benchmark.
"""

from __future__ import annotations

from initlab.engine.backends import BACKENDS
from initlab.engine.config import InitFn, Member, TrainConfig
from initlab.engine.init import initialize_member
from initlab.engine.result import EnsembleResult, EpochRecord, MemberResult
from initlab.engine.state import CHECKPOINT_FORMAT, load_member, member_state_dict, state_from_bytes, state_to_bytes
from initlab.engine.train import train

__all__ = [
    "BACKENDS",
    "CHECKPOINT_FORMAT",
    "EnsembleResult",
    "EpochRecord",
    "InitFn",
    "Member",
    "MemberResult",
    "TrainConfig",
    "initialize_member",
    "load_member",
    "member_state_dict",
    "state_from_bytes",
    "state_to_bytes",
    "train",
]
