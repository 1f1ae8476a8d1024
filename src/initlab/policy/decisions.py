"""A rule's decision and the model-level context the rules read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from initlab.layers import SCALED_KINDS
from initlab.policy.deep_relu import looks_linear_chain
from initlab.policy.plans import RowBlock
from initlab.policy.records import LayerInfo, ModelGraph
from initlab.policy.residual import branch_positions


@dataclass(frozen=True)
class Decision:
    """A rule's output for one parameter (see ``PlanEntry`` for the fields)."""

    scheme: str
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    role: str = ""
    chunks: int = 1
    blocks: tuple[RowBlock, ...] = ()


@dataclass(frozen=True)
class RuleContext:
    """Model-level facts the rules need.

    ``plain``: a chain without residual adds or normalization; ``depth``: weight layers per
    activation; ``branches``: residual branches found; ``norm_free``: no normalization layer;
    ``branch_of``: layer -> (branch size m, position in it); ``tied_width``: the width of an
    embedding tied to a readout layer (None when untied); ``class_token``: the model has a
    learned token (ViT's class token) that zeroed branch ends would make the output depend on
    alone; ``scaled_ends``: branch ends get 1/L of their rule's variance instead of zeros.
    """

    plain: bool
    depth: dict[str, int]
    method: str
    branches: int = 0
    norm_free: bool = False
    branch_of: dict[str, tuple[int, int]] = field(default_factory=dict)
    tied_width: int | None = None
    class_token: str | None = None
    scaled_ends: bool = False
    # the weight layers of a plain ReLU chain deeper than He's predicted trainable depth,
    # name -> position (first / hidden / last): see ``initlab.policy.deep_relu``
    looks_linear: dict[str, str] = field(default_factory=dict)


def context(
    graph: ModelGraph, *, tied_width: int | None = None, class_token: str | None = None, scaled_ends: bool = False
) -> RuleContext:
    """``plain``: traced by fx, no residual add, no normalization, recurrent or attention layer."""
    kinds = {info.kind for info in graph.layers.values()}
    plain = graph.method == "fx" and graph.residual_adds == 0 and not kinds & {"norm", "rnn", "attention"}
    depth: dict[str, int] = {}
    for info in graph.layers.values():
        if info.kind in SCALED_KINDS and info.activation:
            depth[info.activation] = depth.get(info.activation, 0) + 1
    branch_of = {name: (len(b.layers), i) for name, (b, i) in branch_positions(graph).items()}
    return RuleContext(
        plain=plain,
        depth=depth,
        method=graph.method,
        branches=graph.residual_adds,
        norm_free="norm" not in kinds,
        branch_of=branch_of,
        tied_width=tied_width,
        class_token=class_token,
        scaled_ends=scaled_ends,
        looks_linear=looks_linear_chain(graph) if plain else {},
    )


def _g(value: float) -> str:
    return f"{value:.4g}"


def _after(info: LayerInfo) -> str:
    return f"followed by {info.via}" if info.via else "activation unknown"


# --- weight layers ------------------------------------------------------------------------------
