"""Introspection by ``torch.fx``: the data flow, functional activations and residual branches.

Symbolic tracing sees functional activations (``F.relu``, ``torch.tanh``, ``x.relu()``) and
the data flow, so it also finds residual additions: an ``add`` whose operands are a branch of
weight layers and the block input (identity skip) or a shortcut with at most one layer
(projection skip). Modules the taxonomy (``initlab.layers``) knows are leaves; everything else
is traced through.

Node roles are in ``fxroles.py``, the residual search in ``fxresidual.py``.
"""

from __future__ import annotations

import warnings

import torch
from torch import fx, nn

from initlab.layers import FLOW_LAYER_KINDS, is_leaf, module_kind
from initlab.policy.fxresidual import residual_branches
from initlab.policy.fxroles import FUNCTIONAL_ACTIVATIONS, NodeRole, classify_node
from initlab.policy.records import Consumer, LayerInfo, ModelGraph, Outcome, mark_branches

__all__ = [
    "FUNCTIONAL_ACTIVATIONS",
    "NodeRole",
    "classify_node",
    "combine",
    "introspect_fx",
    "residual_branches",
    "trace",
]


class _LeafTracer(fx.Tracer):
    """Keeps only the modules the rules understand as leaves; traces through everything else
    (containers, custom blocks, torch.nn composites), so functional activations inside become visible."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_leaf(m):
            return True
        # A childless module from torch.nn that the rules do not know (e.g. nn.Softmax2d): opaque.
        return not any(True for _ in m.children()) and super().is_leaf_module(m, module_qualified_name)


def _follow(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[list[Outcome], str | None]:
    """Outcomes downstream of a layer's output, looking through norms, transparent ops and adds.

    Returns (outcomes, the first norm passed).
    """
    outcomes: list[Outcome] = []
    first_norm: list[str] = []
    seen: set[fx.Node] = set()
    stack = [(user, ()) for user in node.users]
    while stack:
        user, passed = stack.pop(0)
        if user in seen:
            continue
        seen.add(user)
        role = classify_node(user, modules)
        if role.tag == "activation":
            via = role.via + "".join(f" (through {p})" for p in passed)
            outcomes.append(Outcome("activation", role.activation, role.param, via))
        elif role.tag in ("norm", "transparent", "scale", "shift", "add"):
            step = passed
            if role.tag == "norm":
                if not first_norm:
                    first_norm.append(role.name)
                step = passed + (f"{type(modules[role.name]).__name__} '{role.name}'",)
            elif role.tag == "add":
                step = passed + ("an add",)
            stack.extend((u, step) for u in user.users)
        elif role.tag == "layer":
            outcomes.append(Outcome("layer", via=role.name))
        elif role.tag in ("output", "other"):
            outcomes.append(Outcome(role.tag, via=role.via))
    return outcomes, (first_norm[0] if first_norm else None)


def combine(outcomes: list[Outcome]) -> Consumer:
    """The activation that follows one layer, from the downstream outcomes of its calls."""
    acts = [o for o in outcomes if o.tag == "activation"]
    if acts:
        first = acts[0]
        distinct = {(a.activation, a.param) for a in acts}
        via = first.via
        if len(distinct) > 1:
            names = ", ".join(sorted(f"{a}" for a, _ in distinct))
            via += f"; several activations follow ({names}), the first is used"
        return Consumer(first.activation, first.param, via)
    if outcomes and all(o.tag == "output" for o in outcomes):
        return Consumer(None, None, "the model output", True)
    layers = [o.via for o in outcomes if o.tag == "layer"]
    if layers:
        return Consumer("linear", None, f"next layer '{layers[0]}' (no activation between)")
    others = [o.via for o in outcomes if o.tag == "other"]
    if others:
        return Consumer("linear", None, f"{others[0]} (not an activation)")
    return Consumer("linear", None, "no consumer found")


def trace(model: nn.Module) -> fx.Graph:
    """The fx graph of ``model`` with the taxonomy's leaves (warnings and RNG draws contained)."""
    for module in model.modules():
        module_kind(module)  # probes unknown modules now: a call inside the trace would be traced
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        return _LeafTracer().trace(model)


def introspect_fx(graph: fx.Graph, layers: dict[str, LayerInfo], modules: dict[str, nn.Module]) -> ModelGraph:
    """Fill ``layers`` from a traced graph: activations, outputs, norms after, residual roles."""
    graph_notes: list[str] = []
    order: dict[str, None] = {}  # insertion-ordered set: a list's `in` made deep plans quadratic
    outcomes_by_layer: dict[str, list[Outcome]] = {}
    norm_after: dict[str, str | None] = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in modules:
            continue
        name = node.target
        if name in layers:
            layers[name].calls += 1
        if module_kind(modules[name]) not in FLOW_LAYER_KINDS:
            continue
        order.setdefault(name)
        outcomes, norm = _follow(node, modules)
        outcomes_by_layer.setdefault(name, []).extend(outcomes)
        norm_after.setdefault(name, norm)
    for name, outcomes in outcomes_by_layer.items():
        info = layers.get(name)
        if info is None:
            continue
        consumer = combine(outcomes)
        info.activation, info.activation_param = consumer.activation, consumer.param
        info.via, info.output = consumer.via, consumer.output
        info.norm_after = norm_after.get(name)
        if info.calls > 1:
            graph_notes.append(f"'{name}' is called {info.calls} times; the rule follows all calls")
    branches = residual_branches(graph, modules)
    mark_branches(layers, branches)
    return ModelGraph(method="fx", layers=layers, notes=graph_notes, order=list(order), branches=branches)
