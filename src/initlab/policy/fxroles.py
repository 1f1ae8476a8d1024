"""What each ``torch.fx`` node is for the policy: a layer, a norm, an activation (module,
function or method, with its parameter), an op to look through, a scale, an add, or other.

The tables below name the functional activations and the ops initlab understands; anything
else is ``other`` and stops the search for a layer's activation.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from initlab.layers import FLOW_LAYER_KINDS, activation_of_module, maps_zero_to_zero, module_kind


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
# Ops that map a zero tensor to zero (and pass a residual branch end through).
ZERO_PRESERVING_FUNCTIONS = {
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
ZERO_PRESERVING_METHODS = {
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
# Ops the activation search looks through: the zero-preserving ones and these.
TRANSPARENT_FUNCTIONS = ZERO_PRESERVING_FUNCTIONS | {
    torch.cat,
    torch.mean,
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
}
TRANSPARENT_METHODS = ZERO_PRESERVING_METHODS | {
    "mean",
    "softmax",
    "log_softmax",
    "type_as",
    "t",
    "unflatten",
    "movedim",
    "swapaxes",
}
ADD_METHODS = {"add", "add_"}
SCALE_METHODS = {"mul", "mul_", "div", "div_", "neg"}
NON_TENSOR_METHODS = {"size", "dim", "numel", "ndimension", "type", "element_size", "nelement"}


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


def tensor_operands(node: fx.Node) -> list[fx.Node]:
    """The operands of ``node`` that are tensors (other nodes), in order."""
    return [a for a in node.args if isinstance(a, fx.Node)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _module_role(node: fx.Node, module: nn.Module) -> NodeRole:
    kind = module_kind(module)
    name = str(node.target)  # a call_module's target is the module's dotted name
    if kind in FLOW_LAYER_KINDS:
        return NodeRole("layer", name)
    if kind == "norm":
        return NodeRole("norm", name)
    if kind == "activation":
        act = activation_of_module(module)
        if act is None:
            return NodeRole("other", via=type(module).__name__)
        return NodeRole("activation", activation=act[0], param=act[1], via=f"{type(module).__name__} '{node.target}'")
    if kind == "transparent":
        return NodeRole("transparent", name)
    if kind == "scale":
        return NodeRole("scale", name)
    return NodeRole("other", via=f"{type(module).__name__} '{node.target}'")


def _function_role(node: fx.Node) -> NodeRole:
    fn = node.target
    if fn in FUNCTIONAL_ACTIVATIONS:
        act, pos, kw = FUNCTIONAL_ACTIVATIONS[fn]
        given: Any = None
        if kw is not None and kw in node.kwargs:
            given = node.kwargs[kw]
        elif pos is not None and len(node.args) > pos:
            given = node.args[pos]
        param = float(given) if _is_number(given) else None
        return NodeRole("activation", activation=act, param=param, via=_describe_function(fn))
    tensors = tensor_operands(node)
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
    tensors = tensor_operands(node)
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
        return _module_role(node, modules[str(node.target)])
    if node.op == "call_function":
        return _function_role(node)
    if node.op == "call_method":
        return _method_role(node)
    return NodeRole("other", via=node.op)


def node_maps_zero_to_zero(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether the op of ``node`` maps a zero input to zero (a module by the taxonomy, an op by the tables)."""
    if node.op == "call_module":
        return maps_zero_to_zero(modules[str(node.target)])
    if node.op == "call_function":
        return node.target in ZERO_PRESERVING_FUNCTIONS
    if node.op == "call_method":
        return node.target in ZERO_PRESERVING_METHODS
    return False
