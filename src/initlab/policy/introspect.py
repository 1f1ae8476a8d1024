"""Model -> layer records: what each parameterised module is and what follows it.

The policy needs, for every module that owns parameters, its kind (``initlab.layers``), the
activation its output feeds (a module such as ``nn.ReLU`` *or* a functional call such as
``F.relu``, ``torch.tanh`` or ``x.relu()``), whether its output is the model's output, and
whether it ends a residual branch. Three methods, best first; the result records which one
was used:

1. ``fx`` (``initlab.policy.fxtrace``): ``torch.fx`` symbolic tracing; sees functional
   activations, the data flow and residual additions.
2. ``hooks`` (``initlab.policy.hooks``): when tracing fails and an example input is given (or
   the model offers ``dummy_inputs``, as ``transformers`` models do), forward hooks record the
   execution order; functional activations and residual adds are found on values.
3. ``modules``: no trace and no input: the registration order of the leaf modules stands in for
   the execution order. Functional activations and residual additions are invisible, and what
   cannot be known is reported as unknown.

Nothing here changes a weight, a buffer, a ``training`` flag (it is restored) or the global RNG.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from initlab.layers import (
    FLOW_LAYER_KINDS,
    SCALED_KINDS,
    UNIT_TYPES,
    activation_of_module,
    is_leaf,
    is_transposed_linear,
    module_kind,
    owns_parameters,
)
from initlab.policy import fxtrace, hooks
from initlab.policy.records import LayerInfo, ModelGraph, mark_branches

METHODS = ("fx", "hooks", "modules")
__all__ = ["METHODS", "SCALED_KINDS", "introspect"]  # SCALED_KINDS: policy.apply reads it here


def _base_records(model: nn.Module) -> tuple[dict[str, LayerInfo], dict[str, nn.Module]]:
    """A LayerInfo for each module owning parameters (children of units folded into the unit)."""
    modules = dict(model.named_modules())
    units = [n for n, m in modules.items() if isinstance(m, UNIT_TYPES)]
    layers: dict[str, LayerInfo] = {}
    for name, module in modules.items():
        if not owns_parameters(module):
            continue
        unit = next((u for u in units if u != name and (name.startswith(u + ".") or u == "")), None)
        kind = module_kind(modules[unit]) if unit is not None else module_kind(module)
        layers[name] = LayerInfo(
            name=name,
            kind=kind,
            type_name=type(module).__name__,
            module=module,
            parent=unit,
            has_reset_parameters=callable(getattr(type(module), "reset_parameters", None)),
            transposed=is_transposed_linear(module),
        )
    return layers, modules


def _transformer_hints(layers: dict[str, LayerInfo], modules: dict[str, nn.Module]) -> list[str]:
    """torch's Transformer layers call their activation as a function stored on the layer;
    read it from there when the data flow is not visible."""
    notes = []
    for name, module in modules.items():
        if not isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            continue
        target = f"{name}.linear1" if name else "linear1"
        info = layers.get(target)
        if info is None:
            continue
        fn = module.activation
        act = activation_of_module(fn) if isinstance(fn, nn.Module) else None
        if act is None and fn in fxtrace.FUNCTIONAL_ACTIVATIONS:
            act = (fxtrace.FUNCTIONAL_ACTIVATIONS[fn][0], None)
        if act is not None and (info.activation in (None, "linear")):
            info.activation, info.activation_param = act
            info.via = f"{type(module).__name__}.activation of '{name}'"
            info.output = False
            notes.append(f"'{target}': activation read from {type(module).__name__}.activation")
    return notes


def _fold_units(layers: dict[str, LayerInfo]) -> None:
    """Children of a unit (MultiheadAttention's out_proj) share the unit's flags."""
    for info in layers.values():
        if info.parent is not None and info.parent in layers:
            unit = layers[info.parent]
            info.residual_last = info.residual_last or unit.residual_last
            info.output = unit.output


def _dummy_input(model: nn.Module) -> Any:
    """``model.dummy_inputs`` (``transformers``' PreTrainedModel offers one), else None."""
    try:
        dummy = getattr(model, "dummy_inputs", None)
    except Exception:  # noqa: BLE001 - a property that fails means: no dummy input
        return None
    return dummy if isinstance(dummy, dict) and dummy else None


def _single_layer(model: nn.Module, layers: dict[str, LayerInfo]) -> ModelGraph:
    order = [""] if module_kind(model) in FLOW_LAYER_KINDS else []
    if "" in layers and order:
        layers[""].output = True
        layers[""].via = "the model output (the model is a single layer)"
    _fold_units(layers)
    return ModelGraph(method="modules", layers=layers, notes=["the model is a single layer"], order=order)


def _is_plain_sequential(model: nn.Module) -> bool:
    """An ``nn.Sequential`` (forward not overridden) whose children are all leaves the rules know.

    Its fx graph is exactly the chain of its children (no functional call, no residual add can
    hide in ``Sequential.forward``), so scanning the children gives what tracing gives, and the
    plan reports ``method="fx"``. Tracing costs ~0.2 ms per module: 4 s at 10,000 layers.
    """
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return False
    children = list(model._modules.values())
    # A module used twice (shared weights, one activation instance reused) has one name: trace it.
    return bool(children) and all(is_leaf(m) for m in children) and len({id(m) for m in children}) == len(children)


def introspect(model: nn.Module, example_input: Any = None) -> ModelGraph:
    """Layer records for ``model``: kind, following activation, output role, residual role.

    Tries ``torch.fx`` first, then forward hooks on ``example_input`` (or the model's
    ``dummy_inputs``), then the registration order; ``ModelGraph.method`` and ``notes`` say
    what was used and why.
    """
    layers, modules = _base_records(model)
    notes: list[str] = []
    if is_leaf(model):
        return _single_layer(model, layers)
    if _is_plain_sequential(model):
        order = hooks.scan(
            [hooks.Call(n, m, None, None) for n, m in model.named_children()], layers, None, use_values=True
        )
        _fold_units(layers)
        return ModelGraph(method="fx", layers=layers, notes=[], order=order)
    try:
        traced = fxtrace.trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: use a fallback
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"torch.fx could not trace the model ({type(exc).__name__}: {reason[:120]})")
    else:
        graph = fxtrace.introspect_fx(traced, layers, modules)
        notes.extend(graph.notes)
        notes.extend(_transformer_hints(layers, modules))
        graph.notes = notes
        _fold_units(layers)
        return graph
    branches = []
    if example_input is None and _dummy_input(model) is not None:
        example_input = _dummy_input(model)
        notes.append(f"used the model's dummy_inputs ({', '.join(example_input)}) as the example input")
    if example_input is not None:
        calls, final = hooks.record_calls(model, example_input)
        order = hooks.scan(calls, layers, final, use_values=True)
        branches = hooks.residual_branches_by_values(calls, final)
        mark_branches(layers, branches)
        notes.append(
            f"used forward hooks on the example input (execution order); {len(branches)} residual "
            "branch(es) found on values (a later tensor equal to the branch output plus its input)"
        )
        method = "hooks"
    else:
        items = [hooks.Call(n, m, None, None) for n, m in hooks.leaf_modules(model)]
        order = hooks.scan(items, layers, None, use_values=False)
        notes.append(
            "no example input: used the registration order of modules; functional activations and "
            "residual branches not detected (pass example_input= for hooks)"
        )
        method = "modules"
    notes.extend(_transformer_hints(layers, modules))
    _fold_units(layers)
    return ModelGraph(method=method, layers=layers, notes=notes, order=order, branches=branches)
