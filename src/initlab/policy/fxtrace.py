"""Introspection by ``torch.fx``: the data flow, functional activations and residual branches.

Symbolic tracing sees functional activations (``F.relu``, ``torch.tanh``, ``x.relu()``) and
the data flow, so it also finds residual additions: an ``add`` whose operands are a branch of
weight layers and the block input (identity skip) or a shortcut with at most one layer
(projection skip). Modules the taxonomy (``initlab.layers``) knows are leaves; everything else
is traced through.
"""

from __future__ import annotations

import builtins
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from initlab.layers import (
    FLOW_LAYER_KINDS,
    activation_of_module,
    is_leaf,
    maps_zero_to_zero,
    module_kind,
)
from initlab.policy.records import (
    Consumer,
    LayerInfo,
    ModelGraph,
    Outcome,
    ResidualBranch,
    mark_branches,
)


class _LeafTracer(fx.Tracer):
    """Keeps only the modules the rules understand as leaves; traces through everything else
    (containers, custom blocks, torch.nn composites), so functional activations inside become visible."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_leaf(m):
            return True
        # A childless module from torch.nn that the rules do not know (e.g. nn.Softmax2d): opaque.
        return not any(True for _ in m.children()) and super().is_leaf_module(m, module_qualified_name)


def _functional_activations() -> dict[Callable, tuple[str, int | None, str | None]]:
    """function -> (activation name, position of its parameter, keyword of its parameter)."""
    table: dict[Callable, tuple[str, int | None, str | None]] = {}

    def add(names: list[str], act: str, pos: int | None = None, kw: str | None = None) -> None:
        for dotted in names:
            owner, attr = dotted.rsplit(".", 1)
            fn = getattr({"F": F, "torch": torch}[owner], attr, None)
            if fn is not None:
                table[fn] = (act, pos, kw)

    add(["F.relu", "F.relu_", "torch.relu", "torch.relu_"], "relu")
    add(["F.leaky_relu", "F.leaky_relu_"], "leaky_relu", 1, "negative_slope")
    add(["F.tanh", "torch.tanh"], "tanh")
    add(["F.sigmoid", "torch.sigmoid"], "sigmoid")
    add(["F.selu", "torch.selu"], "selu")
    add(["F.elu", "F.elu_"], "elu", 1, "alpha")
    add(["F.celu", "torch.celu"], "celu", 1, "alpha")
    add(["F.gelu"], "gelu")
    add(["F.silu"], "silu")
    add(["F.mish"], "mish")
    add(["F.softplus"], "softplus")
    add(["F.softsign"], "softsign")
    add(["F.relu6"], "relu6")
    add(["F.hardtanh"], "hardtanh")
    add(["F.hardswish"], "hardswish")
    add(["F.hardsigmoid"], "hardsigmoid")
    add(["torch.sin"], "sin")
    return table


FUNCTIONAL_ACTIVATIONS = _functional_activations()
METHOD_ACTIVATIONS = {
    "relu": "relu",
    "relu_": "relu",
    "tanh": "tanh",
    "tanh_": "tanh",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "sin": "sin",
}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
SCALE_FUNCTIONS = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, operator.neg}
TRANSPARENT_FUNCTIONS = {
    operator.getitem,
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.transpose,
    torch.permute,
    torch.cat,
    torch.mean,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.softmax,
    F.log_softmax,
    F.pad,
    F.interpolate,
    F.layer_norm,
    F.batch_norm,
    F.group_norm,
    F.normalize,
    torch.clone,
}
TRANSPARENT_METHODS = {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "mean",
    "softmax",
    "log_softmax",
    "clone",
    "to",
    "float",
    "double",
    "half",
    "type_as",
    "view_as",
    "reshape_as",
    "t",
    "unflatten",
    "movedim",
    "swapaxes",
}
ADD_METHODS = {"add", "add_"}
SCALE_METHODS = {"mul", "mul_", "div", "div_", "neg"}
NON_TENSOR_METHODS = {"size", "dim", "numel", "ndimension", "type", "element_size", "nelement"}
_ZERO_PRESERVING_FUNCTIONS = {
    operator.getitem,
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.transpose,
    torch.permute,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    torch.clone,
}
_ZERO_PRESERVING_METHODS = {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "clone",
    "to",
    "float",
    "double",
    "half",
    "view_as",
    "reshape_as",
}


@dataclass(frozen=True)
class NodeRole:
    """The role of an fx node for the policy.

    ``tag``: ``layer`` / ``norm`` (``name`` is the module), ``activation`` (``activation``,
    ``param``, ``via``), ``transparent``, ``scale`` (times a number or a scale module), ``shift``
    (plus a number), ``add`` (of two tensors), ``output``, ``ignore``, ``source`` or ``other``
    (``via`` describes it).
    """

    tag: str
    name: str = ""
    activation: str | None = None
    param: float | None = None
    via: str = ""


def _describe_function(fn: Any) -> str:
    name = getattr(fn, "__name__", repr(fn))
    if getattr(F, name, None) is fn:
        return f"F.{name}"
    if getattr(torch, name, None) is fn:
        return f"torch.{name}"
    return name


def _tensor_operands(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.args if isinstance(a, fx.Node)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _module_role(node: fx.Node, module: nn.Module) -> NodeRole:
    kind = module_kind(module)
    if kind in FLOW_LAYER_KINDS:
        return NodeRole("layer", node.target)
    if kind == "norm":
        return NodeRole("norm", node.target)
    if kind == "activation":
        act = activation_of_module(module)
        if act is None:
            return NodeRole("other", via=type(module).__name__)
        return NodeRole("activation", activation=act[0], param=act[1], via=f"{type(module).__name__} '{node.target}'")
    if kind == "transparent":
        return NodeRole("transparent", node.target)
    if kind == "scale":
        return NodeRole("scale", node.target)
    return NodeRole("other", via=f"{type(module).__name__} '{node.target}'")


def _function_role(node: fx.Node) -> NodeRole:
    fn = node.target
    if fn in FUNCTIONAL_ACTIVATIONS:
        act, pos, kw = FUNCTIONAL_ACTIVATIONS[fn]
        param = None
        if kw is not None and kw in node.kwargs:
            param = node.kwargs[kw]
        elif pos is not None and len(node.args) > pos:
            param = node.args[pos]
        param = float(param) if _is_number(param) else None
        return NodeRole("activation", activation=act, param=param, via=_describe_function(fn))
    tensors = _tensor_operands(node)
    if fn in ADD_FUNCTIONS:
        return NodeRole("add") if len(tensors) >= 2 else NodeRole("shift")
    if fn in SCALE_FUNCTIONS:
        if fn in (operator.truediv, operator.itruediv) and not isinstance(node.args[0], fx.Node):
            return NodeRole("other", via="a number divided by a tensor")
        return NodeRole("scale") if len(tensors) <= 1 else NodeRole("other", via=_describe_function(fn))
    if fn in TRANSPARENT_FUNCTIONS:
        return NodeRole("transparent")
    if fn is builtins.getattr:
        return NodeRole("ignore")
    return NodeRole("other", via=_describe_function(fn))


def _method_role(node: fx.Node) -> NodeRole:
    name = node.target
    if name in METHOD_ACTIVATIONS:
        return NodeRole("activation", activation=METHOD_ACTIVATIONS[name], via=f"Tensor.{name}()")
    tensors = _tensor_operands(node)
    if name in ADD_METHODS:
        return NodeRole("add") if len(tensors) >= 2 else NodeRole("shift")
    if name in SCALE_METHODS:
        return NodeRole("scale") if len(tensors) <= 1 else NodeRole("other", via=f"Tensor.{name}()")
    if name in TRANSPARENT_METHODS:
        return NodeRole("transparent")
    if name in NON_TENSOR_METHODS:
        return NodeRole("ignore")
    return NodeRole("other", via=f"Tensor.{name}()")


def classify_node(node: fx.Node, modules: dict[str, nn.Module]) -> NodeRole:
    """The ``NodeRole`` of an fx node."""
    if node.op == "output":
        return NodeRole("output")
    if node.op in ("placeholder", "get_attr"):
        return NodeRole("source")
    if node.op == "call_module":
        return _module_role(node, modules[node.target])
    if node.op == "call_function":
        return _function_role(node)
    if node.op == "call_method":
        return _method_role(node)
    return NodeRole("other", via=node.op)


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


def _ancestor_masks(nodes: list[fx.Node]) -> tuple[dict[fx.Node, int], dict[fx.Node, int]]:
    index = {n: i for i, n in enumerate(nodes)}
    anc: dict[fx.Node, int] = {}
    for n in nodes:
        mask = 0
        for parent in n.all_input_nodes:
            mask |= anc[parent] | (1 << index[parent])
        anc[n] = mask
    return anc, index


def _maps_zero_to_zero(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return maps_zero_to_zero(modules[node.target])
    if node.op == "call_function":
        return node.target in _ZERO_PRESERVING_FUNCTIONS
    if node.op == "call_method":
        return node.target in _ZERO_PRESERVING_METHODS
    return False


def _branch_end(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str | None, str | None]:
    """Walk back from an add operand through norms, dropout, scaling and getitem to the layer that
    produced it. Returns (layer name or None, the norm nearest to the add or None)."""
    norm = None
    current: fx.Node | None = node
    for _ in range(64):
        if current is None:
            return None, None
        role = classify_node(current, modules)
        if role.tag == "layer":
            return role.name, norm
        if role.tag == "norm":
            norm = norm or role.name
        elif not (role.tag == "scale" or (role.tag == "transparent" and _maps_zero_to_zero(current, modules))):
            return None, None
        inputs = _tensor_operands(current)
        current = inputs[0] if inputs else None
    return None, None


def _split_add(
    u: fx.Node, v: fx.Node, anc: dict, index: dict, nodes: list, layer_mask: int
) -> tuple[fx.Node, int] | None:
    """(branch operand, mask of its own layer nodes) when ``u + v`` is residual, else None."""
    bu, bv = 1 << index[u], 1 << index[v]
    upto_u, upto_v = anc[u] | bu, anc[v] | bv
    if bu & anc[v]:
        return v, upto_v & ~upto_u & layer_mask
    if bv & anc[u]:
        return u, upto_u & ~upto_v & layer_mask
    common = anc[u] & anc[v]
    if not common:
        return None
    c = common.bit_length() - 1  # the latest common ancestor
    before = anc[nodes[c]] | (1 << c)
    own_u, own_v = upto_u & ~before & layer_mask, upto_v & ~before & layer_mask
    k_u, k_v = own_u.bit_count(), own_v.bit_count()
    if k_u > k_v and k_v <= 1:
        return u, own_u
    if k_v > k_u and k_u <= 1:
        return v, own_v
    return None


def residual_branches(graph: fx.Graph, modules: dict[str, nn.Module]) -> list[ResidualBranch]:
    """One ``ResidualBranch`` for each residual add.

    An add of u and v is residual when one operand is an ancestor of the other (identity skip:
    ``x + f(x)``), or when both descend from a common node and one path has at most one weight
    layer (projection shortcut) while the other has more (the branch).
    """
    nodes = list(graph.nodes)
    anc, index = _ancestor_masks(nodes)
    roles = {n: classify_node(n, modules) for n in nodes}
    layer_mask = 0
    for n in nodes:
        if roles[n].tag == "layer":
            layer_mask |= 1 << index[n]
    found: list[ResidualBranch] = []
    for n in nodes:
        operands = _tensor_operands(n)
        if roles[n].tag != "add" or len(operands) != 2:
            continue
        split = _split_add(operands[0], operands[1], anc, index, nodes, layer_mask)
        if split is None or split[1] == 0:
            continue
        end, norm = _branch_end(split[0], modules)
        if end is None:
            continue
        members: list[str] = []
        for i, node in enumerate(nodes):
            if split[1] >> i & 1 and node.target not in members:
                members.append(node.target)
        post = next((roles[u].name for u in n.users if roles[u].tag == "norm"), None)
        found.append(ResidualBranch(end, tuple(members), norm, post))
    return found


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
