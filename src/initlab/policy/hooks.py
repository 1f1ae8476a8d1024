"""Introspection by execution: forward hooks on an example input, or the registration order.

When ``torch.fx`` cannot trace a model (data-dependent control flow, ``transformers`` 5.x
models), forward hooks record the leaf modules' calls in execution order with their input and
output. A functional activation between two modules is identified by which registered
activation maps the first one's output onto the next one's input; a residual branch by a later
tensor that equals the branch's output plus a tensor seen before the branch started
(``x + f(x)``). Without an input, the registration order of the leaves stands in for the
execution order: functional activations and residual additions are then invisible, and a
layer followed by another layer is reported as "unknown", not as "no activation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.activations import get_activation
from initlab.errors import UserError
from initlab.layers import (
    FLOW_LAYER_KINDS,
    activation_of_module,
    call_model,
    eval_mode,
    first_tensor,
    is_leaf,
    module_kind,
)
from initlab.policy.records import Consumer, LayerInfo, ResidualBranch


@dataclass
class Call:
    """One leaf module's call: its first input and first output tensor (None when not recorded)."""

    name: str
    module: nn.Module
    inp: torch.Tensor | None
    out: torch.Tensor | None


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves in registration order: known leaf types (their children excluded) and childless modules."""
    leaves: list[tuple[str, nn.Module]] = []
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(u + ".") for u in inside):
            continue
        leaf = is_leaf(module)
        if leaf or not any(True for _ in module.children()):
            if name == "" and not leaf:
                continue
            leaves.append((name, module))
            if leaf:
                inside.append(name)
    return leaves


def record_calls(model: nn.Module, example_input: Any) -> tuple[list[Call], Any]:
    """Leaf-module calls in execution order on ``example_input`` (no grad, eval mode)."""
    calls: list[Call] = []
    handles = []
    for name, module in leaf_modules(model):

        def hook(mod, args, kwargs, output, _name=name):
            inp = first_tensor(args) if args else first_tensor(list(kwargs.values()))
            calls.append(Call(_name, mod, inp, first_tensor(output)))

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        with eval_mode(model), torch.no_grad():
            output = call_model(model, example_input)
    except Exception as exc:
        shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the model's forward failed on the example input ({shape}): {first}") from exc
    finally:
        for h in handles:
            h.remove()
    return calls, first_tensor(output)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b:
        return True
    if a.numel() != b.numel() or a.dtype != b.dtype:
        return False
    return bool(torch.equal(a.reshape(-1), b.reshape(-1)))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or not a.dtype.is_floating_point or not b.dtype.is_floating_point:
        return False
    scale = float(b.abs().max()) + 1e-12
    return bool(torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5 * scale))


_MATCH_CANDIDATES = (
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "silu",
    "selu",
    "elu",
    "mish",
    "softplus",
    "softsign",
    "relu6",
    "hardtanh",
    "hardswish",
    "hardsigmoid",
    "sin",
)


def match_activation(before: torch.Tensor, after: torch.Tensor) -> tuple[str, float | None] | None:
    """The registered activation phi with phi(before) == after (to float tolerance), if any."""
    if before.numel() != after.numel() or before.numel() == 0 or not before.dtype.is_floating_point:
        return None
    x = before.detach().reshape(-1).double()
    y = after.detach().reshape(-1).double()
    scale = float(y.abs().max()) + 1e-12
    for name in _MATCH_CANDIDATES:
        if torch.allclose(get_activation(name)(x), y, rtol=1e-4, atol=1e-5 * scale):
            return name, None
    negative = x < -1e-6
    if negative.any():
        slopes = y[negative] / x[negative]
        slope = float(slopes.median())
        if 0 < slope < 1 and torch.allclose(F.leaky_relu(x, slope), y, rtol=1e-4, atol=1e-5 * scale):
            return "leaky_relu", slope
    return None


def _next_consumer(
    items: list[Call], i: int, info: LayerInfo, final: torch.Tensor | None, use_values: bool
) -> Consumer:
    """What follows the layer call ``items[i]``: the first activation, layer or other module."""
    current = items[i].out
    passed: list[str] = []
    for j in range(i + 1, len(items)):  # not items[i + 1:]: a copy per layer is quadratic in depth
        nxt = items[j]
        if use_values and current is not None and nxt.inp is not None and not _same_values(current, nxt.inp):
            found = match_activation(current, nxt.inp)
            if found:
                return Consumer(found[0], found[1], f"a functional {found[0]} (matched on values) before '{nxt.name}'")
            return Consumer("linear", None, f"an unidentified operation before '{nxt.name}'")
        nkind = module_kind(nxt.module)
        label = f"{type(nxt.module).__name__} '{nxt.name}'"
        if nkind == "activation":
            act = activation_of_module(nxt.module)
            if act is None:
                return Consumer("linear", None, f"{label} (not an activation)")
            order = "" if use_values else " (registration order)"
            return Consumer(act[0], act[1], label + "".join(f" (through {p})" for p in passed) + order)
        if nkind in ("norm", "transparent", "scale"):
            if nkind == "norm":
                info.norm_after = info.norm_after or nxt.name
                passed.append(label)
            current = nxt.out
            continue
        if nkind in FLOW_LAYER_KINDS:
            if not use_values:
                return Consumer(
                    "linear", None, f"unknown: registration order only (the next registered layer is '{nxt.name}')"
                )
            return Consumer("linear", None, f"next layer '{nxt.name}' (no activation between)")
        if use_values and nxt.inp is not None and nxt.out is not None:
            act = match_activation(nxt.inp, nxt.out)
            if act:  # a custom activation module: identified by what it does to its input
                return Consumer(act[0], act[1], f"{label} (acts as {act[0]})")
        return Consumer("linear", None, f"{label} (not an activation)")
    if use_values and current is not None and final is not None and not _same_values(current, final):
        found = match_activation(current, final)
        if found:
            return Consumer(found[0], found[1], f"a functional {found[0]} (matched on values) at the output")
        return Consumer("linear", None, "an unidentified operation before the output")
    if not use_values:
        return Consumer(None, None, "the model output (last registered layer)", True)
    return Consumer(None, None, "the model output", True)


def scan(items: list[Call], layers: dict[str, LayerInfo], final: torch.Tensor | None, use_values: bool) -> list[str]:
    """Fill activation/output for each layer from a sequence of leaf calls (or leaf modules)."""
    order: dict[str, None] = {}  # insertion-ordered set (a list's `in` is quadratic in depth)
    done: set[str] = set()
    for i, item in enumerate(items):
        if item.name in layers:
            layers[item.name].calls += 1
        if module_kind(item.module) not in FLOW_LAYER_KINDS:
            continue
        order.setdefault(item.name)
        if item.name in done or item.name not in layers:
            continue
        done.add(item.name)
        info = layers[item.name]
        consumer = _next_consumer(items, i, info, final, use_values)
        info.activation, info.activation_param = consumer.activation, consumer.param
        info.via, info.output = consumer.via, consumer.output
    return list(order)


# How far (in leaf calls) a residual add may follow its branch's last layer, and precede it.
_ADD_WINDOW = 6
_SKIP_WINDOW = 24


def _branch_output(items: list[Call], i: int) -> tuple[torch.Tensor | None, int]:
    """The branch value after the layer call ``i``, carried through transparent and scale modules."""
    current, j = items[i].out, i
    while j + 1 < len(items):
        nxt = items[j + 1]
        if nxt.inp is None or current is None or not _same_values(current, nxt.inp):
            break
        if module_kind(nxt.module) not in ("transparent", "scale"):
            break
        current, j = nxt.out, j + 1
    return current, j


def _find_skip(items: list[Call], start: int, stop: int, skip: torch.Tensor) -> int | None:
    """The first call in ``[start, stop)`` whose input equals ``skip``: where the branch starts
    (q, k and v all read the block input; the branch begins at the first of them)."""
    for k in range(start, stop):
        inp = items[k].inp
        if inp is not None and inp.shape == skip.shape and _close(inp, skip):
            return k
    return None


def residual_branches_by_values(items: list[Call], final: torch.Tensor | None) -> list[ResidualBranch]:
    """Residual adds found on values: a later tensor ``t`` with ``t - f == x``, where ``f`` is a
    branch's output and ``x`` the input of a module called before the branch's layers."""
    found: list[ResidualBranch] = []
    sums: list[tuple[int, int]] = []  # (branch index, call whose input is the sum)
    skips: list[torch.Tensor | None] = []  # each branch's skip-path tensor
    flow = [i for i, c in enumerate(items) if module_kind(c.module) in FLOW_LAYER_KINDS and c.out is not None]
    for i in flow:
        branch_out, j = _branch_output(items, i)
        if branch_out is None or not branch_out.dtype.is_floating_point:
            continue
        later = [(m, items[m].inp) for m in range(j + 1, min(len(items), j + 1 + _ADD_WINDOW))]
        if final is not None:
            later.append((len(items), final))
        for m, total in later:
            if total is None or total.shape != branch_out.shape or _same_values(total, branch_out):
                continue
            k = _find_skip(items, max(0, i - _SKIP_WINDOW), i + 1, total - branch_out)
            if k is None:
                continue
            members = tuple(dict.fromkeys(items[q].name for q in range(k, i + 1) if q in flow))
            if len(members) < 1:
                continue
            found.append(ResidualBranch(items[i].name, members))
            sums.append((len(found) - 1, m))
            skips.append(items[k].inp)
            break
    return _mark_post_norms(items, found, sums, skips)


def _mark_post_norms(
    items: list[Call], found: list[ResidualBranch], sums: list[tuple[int, int]], skips: list[torch.Tensor | None]
) -> list[ResidualBranch]:
    """Post-LN: a branch's sum goes into a norm, and the next branch's skip path is that norm's
    output (pre-LN: the raw sum). The last branch, with no next one, follows the others."""
    verdicts: list[bool | None] = []
    for b, m in sums:
        if m >= len(items) or module_kind(items[m].module) != "norm" or b + 1 >= len(skips):
            verdicts.append(None)
            continue
        nxt = skips[b + 1]
        normed, raw = items[m].out, items[m].inp
        if normed is not None and nxt is not None and _same_values(normed, nxt):
            verdicts.append(True)
        elif raw is not None and nxt is not None and _same_values(raw, nxt):
            verdicts.append(False)
        else:
            verdicts.append(None)
    known = [v for v in verdicts if v is not None]
    default = bool(known) and all(known)
    out = list(found)
    for (b, m), verdict in zip(sums, verdicts):
        is_post = (
            verdict if verdict is not None else default and m < len(items) and module_kind(items[m].module) == "norm"
        )
        if is_post:
            branch = out[b]
            out[b] = ResidualBranch(branch.end, branch.layers, branch.norm, items[m].name)
    return out
