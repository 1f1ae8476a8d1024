"""Records the introspection produces: per-layer facts, residual branches, downstream outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class LayerInfo:
    """What the policy knows about one module that owns parameters.

    ``activation`` is the registered name of the activation its output feeds (``"linear"``
    when another layer or an unidentified operation follows, ``None`` for kinds where it does
    not apply); ``via`` says how it was found. ``output`` marks a layer whose output reaches the
    model's output without an activation. ``residual_last`` marks the last layer of a residual
    branch (its output, through transparent ops only, is added to the skip path);
    ``residual_norm`` names the norm layer between it and the addition, if any. ``transposed``
    marks a weight stored (in, out) (``transformers``' ``Conv1D``): its forward fan-in is
    torch's ``fan_out`` of the tensor.
    """

    name: str
    kind: str
    type_name: str
    module: nn.Module = field(repr=False, compare=False)
    activation: str | None = None
    activation_param: float | None = None
    via: str = ""
    output: bool = False
    residual_last: bool = False
    residual_norm: str | None = None
    ends_residual_branch: bool = False  # for norm layers: this norm ends a residual branch
    norm_after: str | None = None
    parent: str | None = None  # the unit (attention, recurrent) this module belongs to
    has_reset_parameters: bool = False
    calls: int = 0
    transposed: bool = False
    post_norm: str | None = None  # a norm applied to the sum this layer's branch is added to


@dataclass(frozen=True)
class ResidualBranch:
    """One residual addition ``skip + branch``: the branch's weight layers in call order, the
    last of them, the norm between it and the add (if any) and the norm applied to the sum
    (post-LN), if any."""

    end: str
    layers: tuple[str, ...] = ()
    norm: str | None = None
    post_norm: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What consumes a layer's output downstream: an ``activation`` (name, parameter, how it
    was found), another ``layer``, the model ``output``, or some ``other`` operation."""

    tag: str
    activation: str | None = None
    param: float | None = None
    via: str = ""


@dataclass(frozen=True)
class Consumer:
    """The decision drawn from a layer's outcomes: the activation that follows it and why."""

    activation: str | None
    param: float | None
    via: str
    output: bool = False


@dataclass
class ModelGraph:
    """Introspection result: per-module records plus how they were found."""

    method: str
    layers: dict[str, LayerInfo]
    notes: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # weight layers, first call order when known
    branches: list[ResidualBranch] = field(default_factory=list)

    @property
    def residual_adds(self) -> int:
        return len(self.branches)

    @property
    def has_norm(self) -> bool:
        return any(info.kind == "norm" for info in self.layers.values())

    def weight_layers(self) -> list[LayerInfo]:
        return [self.layers[n] for n in self.order if n in self.layers]


def mark_branches(layers: dict[str, LayerInfo], branches: list[ResidualBranch]) -> None:
    """Write each branch's roles into the layer records."""
    for branch in branches:
        if branch.norm is not None and branch.norm in layers:
            layers[branch.norm].ends_residual_branch = True
            if branch.end in layers:
                layers[branch.end].residual_norm = branch.norm
        elif branch.end in layers:
            layers[branch.end].residual_last = True
        if branch.post_norm is not None and branch.end in layers:
            layers[branch.end].post_norm = branch.post_norm
