"""A sweep as member chunks: (scheme, lr, seed) members that train together as one ensemble.

A chunk is the unit of work, of scheduling (one Ray task) and of commit (one store
transaction, which commits the store cells ``(scheme, seed)`` of its members). Chunks are cut
from the config's member list, so the same config and chunk size give the same chunks,
whichever backend runs them, and each member trains with the same ensemble-mates: the local
and Ray backends produce the same bits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.sweep.config import ZEROED_BRANCH_ENDS, CompareConfig, MemberSpec, is_policy


@dataclass(frozen=True)
class MemberChunk:
    index: int
    members: tuple[MemberSpec, ...]

    @property
    def key(self) -> str:
        """The chunk's checkpoint key in the store (the stored text predates the name ``MemberChunk``)."""
        return f"cell-{self.index:04d}"

    @property
    def store_keys(self) -> set[tuple[str, int]]:
        """The store cells (label, seed) this chunk commits."""
        return {m.key for m in self.members}


def make_chunks(config: CompareConfig, size: int | None = None) -> list[MemberChunk]:
    """Chunks of ``size`` members (default ``config.chunk_size``), in ``config.members`` order."""
    members = config.members
    size = config.chunk_size if size is None else size
    return [MemberChunk(i, tuple(members[k : k + size])) for i, k in enumerate(range(0, len(members), size))]


class PolicyInit:
    """A member initialization by a per-layer policy ("auto"): picklable, for Ray workers."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.__name__ = policy

    def __call__(self, model: nn.Module, seed: int) -> None:
        from initlab.policy import initialize, plan

        if self.policy.endswith(ZEROED_BRANCH_ENDS):
            # One scheme for every hidden and output weight; the rest (residual-branch ends: zeros,
            # biases: zeros, norms) as the auto policy sets them.
            scheme = self.policy[: -len(ZEROED_BRANCH_ENDS)]
            auto = plan(model, "auto")
            initialize(model, {e.param: scheme for e in auto.entries if e.role in ("hidden", "output")}, seed=seed)
        else:
            initialize(model, self.policy, seed=seed)


def member_init(scheme: str) -> Any:
    """What the engine's ``Member`` takes: a ``Scheme`` from its spec, or a policy callable."""
    from initlab.schemes import scheme_from_spec

    return PolicyInit(scheme) if is_policy(scheme) else scheme_from_spec(scheme)


def model_factory(config: CompareConfig, input_shape: tuple[int, ...], num_classes: int):
    """A picklable zero-argument factory for the configured model."""
    from initlab.models import build

    return functools.partial(
        build,
        config.model,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        width=config.width,
        depth=config.depth,
        activation=config.activation,
        **config.model_options,
    )


def build_model_template(config: CompareConfig, dataset: Any):
    """The configured model, built once per compare (weights are set per member later)."""
    from initlab.engine.init import build_template

    return build_template(model_factory(config, dataset.input_shape, dataset.num_classes))


def steps_per_chunk(config: CompareConfig, n_train: int) -> int:
    return math.ceil(n_train / config.batch_size) * config.epochs
