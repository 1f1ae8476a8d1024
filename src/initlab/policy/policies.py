"""Policy -> Plan: ``initlab.plan(model, policy)``. Reads the model, writes nothing.

A policy is one of

- ``"auto"``: the rules of ``initlab.policy.rules``, per parameter, with reasons;
- ``"lsuv"``: orthogonal pre-init for every Linear/Conv weight (the rest auto), to be rescaled
  on data by ``initialize`` (Mishkin & Matas 2016); ``"auto+lsuv"``: auto, then the same rescaling;
- a scheme name or ``Scheme``: that scheme for every weight it can fill, biases zero,
  normalization layers and anything it cannot fill auto;
- a dict ``{parameter name or glob pattern: scheme}`` (scheme: a name, a ``Scheme``, a config
  dict, ``"keep"`` or ``"auto"``), the rest auto. An exact name wins over patterns; among
  patterns the first in the dict's order wins;
- a ``Plan`` (checked against the model).
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from initlab.errors import UserError, closest, unknown
from initlab.layers import SCALED_KINDS
from initlab.policy import rules
from initlab.policy.introspect import introspect
from initlab.policy.kind_rules import TOKEN_PATTERN
from initlab.policy.named import NAMED_POLICIES, apply_named, deepnorm_note
from initlab.policy.plans import KEEP, Plan, PlanEntry
from initlab.policy.records import ModelGraph
from initlab.schemes import Scheme, get_scheme, list_schemes

POLICY_NAMES = ("auto", "lsuv", "auto+lsuv", "auto+gpt2", *NAMED_POLICIES, "mup", "auto+mup")
# More than this fraction of parameters left as constructed: warn, naming them.
KEEP_WARNING_FRACTION = 0.25
OVERRIDE_WORDS = (KEEP, "auto")


def _check_model(model: Any) -> list[tuple[str, nn.Parameter]]:
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    params = list(model.named_parameters())
    for name, p in params:
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise UserError(f"parameter {name!r} is not materialized yet (a lazy module); run one forward pass first")
    return params


def _resolve_scheme(value: Any, where: str) -> Scheme:
    try:
        if isinstance(value, Scheme):
            return value
        if isinstance(value, Mapping):
            return Scheme.from_config(dict(value))
        if isinstance(value, str):
            return get_scheme(value)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    raise UserError(f"{where}: a scheme is a name, a Scheme or a config dict; got {value!r}")


def _override_specs(policy: Mapping[str, Any]) -> dict[str, Scheme | str]:
    specs: dict[str, Scheme | str] = {}
    for key, value in policy.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"policy keys are parameter names or glob patterns; got {key!r}")
        if isinstance(value, str) and value in OVERRIDE_WORDS:
            specs[key] = value
        else:
            specs[key] = _resolve_scheme(value, f"policy[{key!r}]")
    return specs


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _entry(name: str, shape: tuple[int, ...], info: Any, decision: rules.Decision, source: str) -> PlanEntry:
    return PlanEntry(
        param=name,
        scheme=decision.scheme,
        params=dict(decision.params),
        reason=decision.reason,
        layer=info.name if info is not None else name.rpartition(".")[0],
        kind=info.kind if info is not None else "",
        activation=info.activation if info is not None else None,
        role=decision.role,
        shape=shape,
        chunks=decision.chunks,
        blocks=decision.blocks,
        source=source,
    )


def _spec_decision(spec: Scheme, reason: str, role: str) -> rules.Decision:
    return rules.Decision(spec.name, dict(spec.params), reason, role)


def _tied_readout_width(model: nn.Module, graph: ModelGraph) -> int | None:
    """The width d of an embedding matrix (V, d) that a non-embedding layer also uses (a tied LM head)."""
    owners: dict[int, list[str]] = {}
    tensors: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name.rpartition(".")[0])
        tensors[id(p)] = p
    for key, names in owners.items():
        kinds = {graph.layers[n].kind if n in graph.layers else "" for n in names}
        if len(names) > 1 and "embedding" in kinds and kinds - {"embedding"} and tensors[key].dim() == 2:
            return int(tensors[key].shape[1])
    return None


def _class_token(params: list[tuple[str, nn.Parameter]]) -> str | None:
    """The name of a learned class token (ViT's ``cls_token``), if the model has one."""
    for name, _ in params:
        local = name.rpartition(".")[2].lower()
        if TOKEN_PATTERN.match(local) and local.startswith(("cls", "class")):
            return name
    return None


def _auto_entries(
    params: list[tuple[str, nn.Parameter]], graph: ModelGraph, model: nn.Module, scaled_ends: bool = False
) -> list[tuple[str, tuple[int, ...], Any, rules.Decision]]:
    ctx = rules.context(
        graph,
        tied_width=_tied_readout_width(model, graph),
        class_token=_class_token(params),
        scaled_ends=scaled_ends,
    )
    out = []
    for name, p in params:
        owner, _, local = name.rpartition(".")
        info = graph.layers.get(owner)
        shape = tuple(p.shape)
        out.append((name, shape, info, rules.decide(info, local, shape, ctx)))
    return out


def _validate_plan(plan: Plan, params: list[tuple[str, nn.Parameter]]) -> Plan:
    shapes = {name: tuple(p.shape) for name, p in params}
    extra = [e.param for e in plan.entries if e.param not in shapes]
    if extra:
        near = closest(extra[0], shapes)
        hint = f" (nearest: {', '.join(near)})" if near else ""
        raise UserError(f"the plan names parameters this model does not have: {', '.join(extra[:5])}{hint}")
    for e in plan.entries:
        if e.shape and tuple(e.shape) != shapes[e.param]:
            raise UserError(
                f"plan entry {e.param!r} is for shape {tuple(e.shape)}; the model's parameter has {shapes[e.param]}"
            )
        if not e.keeps:
            get_scheme(e.scheme, **e.params).check_shape(shapes[e.param])
    missing = [n for n in shapes if n not in plan]
    if missing:
        warnings.warn(
            f"the plan has no entry for {len(missing)} parameter(s) of the model ({', '.join(missing[:5])}); "
            "they keep their values",
            stacklevel=3,
        )
    return plan


def plan(
    model: nn.Module,
    policy: Any = "auto",
    example_input: Any = None,
    *,
    base_width: int | None = None,
    base_model: nn.Module | None = None,
) -> Plan:
    """The per-parameter initialization ``policy`` gives for ``model``, with reasons. Touches no weight.

    Args:
        model: any ``torch.nn.Module``.
        policy: ``"auto"``, ``"lsuv"``, ``"auto+lsuv"``, a scheme name or ``Scheme``, a dict of
            parameter names / glob patterns to schemes (the rest auto), or a ``Plan``.
        example_input: optional input (a tensor, a tuple of positional inputs or a dict of
            keyword inputs) used only when ``torch.fx`` cannot trace the model: forward hooks
            then record the execution order (``Plan.method == "hooks"``).
        base_width: for ``"mup"`` / ``"auto+mup"`` (``initlab.mup``): the width the
            hyperparameters were tuned at.
        base_model: for ``"mup"`` / ``"auto+mup"``: the same model at that base width (instead
            of ``base_width``).

    Returns:
        A ``Plan``; ``print(plan)`` shows the table, ``plan.to_dict()`` is JSON-serialisable.

    Raises:
        UserError: (a ValueError) unknown scheme or policy (with the nearest names), a scheme
            that cannot fill a named parameter, a plan for another model.

    Warns:
        UserWarning: when a pattern matches no parameter, and when the model has no parameters.

    >>> import torch.nn as nn, initlab
    >>> p = initlab.plan(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> p["0.weight"].scheme, p["2.weight"].role
    ('he_normal', 'output')
    """
    params = _check_model(model)
    if isinstance(policy, Plan):
        return _validate_plan(policy, params)
    if isinstance(policy, str) and policy in ("mup", "auto+mup") and params:
        from initlab.mup.plan import mup_plan

        return mup_plan(model, policy, base_width=base_width, base_model=base_model, example_input=example_input)

    request = _parse_policy(policy)
    if not params:
        warnings.warn("the model has no parameters: the plan is empty", stacklevel=2)
        return Plan(
            (), policy=request.label, method="none", notes=("the model has no parameters",), refine=request.refine
        )

    graph = introspect(model, example_input)
    notes = list(graph.notes) + _tied_notes(model)
    decided = _auto_entries(params, graph, model, scaled_ends=policy == "auto+gpt2")
    if isinstance(policy, str) and policy in NAMED_POLICIES:
        decided = apply_named(policy, decided, graph, model)
        if policy == "deepnorm":
            notes.append(deepnorm_note(graph))
    matched: dict[str, int] = dict.fromkeys(request.overrides, 0)
    unfit: dict[str, list[str]] = {}
    entries, lsuv_layers = _entries(decided, request, matched, unfit)
    _warn_unmatched(request, matched, unfit, [n for n, _ in params])
    if request.refine == "lsuv":
        notes.append(
            f"refine=lsuv: initialize(model, ..., data=batch) rescales {lsuv_layers} Linear/Conv weight(s) "
            "to unit output variance (Mishkin & Matas 2016)"
        )
    _warn_kept(entries)
    return Plan(tuple(entries), policy=request.label, method=graph.method, notes=tuple(notes), refine=request.refine)


def _entries(
    decided: list[tuple[str, tuple[int, ...], Any, rules.Decision]],
    request: _Request,
    matched: dict[str, int],
    unfit: dict[str, list[str]],
) -> tuple[list[PlanEntry], int]:
    """The plan's entries: the auto decisions with the request's LSUV pre-init, uniform scheme
    and overrides applied; and how many weights LSUV will rescale."""
    entries: list[PlanEntry] = []
    lsuv_layers = 0
    for name, shape, info, decision in decided:
        local = name.rpartition(".")[2]
        scaled_weight = info is not None and info.kind in SCALED_KINDS and local == "weight"
        source = "auto"
        if request.base == "lsuv" and scaled_weight and decision.role != "residual_last":
            decision, source = LSUV_PRE_INIT, "lsuv"
        if request.uniform is not None:
            decision, source = _uniform_decision(request.uniform, name, local, shape, info, decision)
            if len(shape) >= 2 and source == "auto" and not (info is not None and info.kind == "norm"):
                unfit.setdefault("", []).append(name)
        if request.overrides:
            decision, source = _override_decision(request.overrides, name, shape, decision, source, matched, unfit)
        if request.refine == "lsuv" and scaled_weight and decision.scheme not in ("zeros", KEEP):
            lsuv_layers += 1
        entries.append(_entry(name, shape, info, decision, source))

    return entries, lsuv_layers


@dataclass(frozen=True)
class _Request:
    """What a policy asks for beyond the auto rules: one scheme for every weight it fits
    (``uniform``), per-name ``overrides``, LSUV pre-init (``base``) and rescaling (``refine``)."""

    label: str
    uniform: Scheme | None = None
    overrides: dict[str, Scheme | str] = field(default_factory=dict)
    refine: str | None = None
    base: str = "auto"


def _parse_policy(policy: Any) -> _Request:
    if isinstance(policy, str):
        if policy in POLICY_NAMES:
            base = "lsuv" if policy == "lsuv" else "auto"
            return _Request(policy, refine="lsuv" if "lsuv" in policy else None, base=base)
        try:
            uniform = get_scheme(policy)
        except ValueError:
            raise unknown("policy", policy, list(POLICY_NAMES) + list_schemes(aliases=True)) from None
        return _Request(uniform.name, uniform=uniform)
    if isinstance(policy, Scheme):
        return _Request(policy.name, uniform=policy)
    if isinstance(policy, Mapping):
        overrides = _override_specs(policy)
        return _Request(f"auto + {len(overrides)} override(s)", overrides=overrides)
    raise UserError(
        f"policy must be 'auto', 'lsuv', 'auto+lsuv', a scheme name, a Scheme, a dict of "
        f"parameter patterns to schemes, or a Plan; got {type(policy).__name__}"
    )


LSUV_PRE_INIT = rules.Decision(
    "orthogonal",
    {"gain": 1.0},
    "LSUV pre-init: orthogonal, gain 1 (Saxe et al. 2014); rescaled to unit output variance on "
    "data by initialize (Mishkin & Matas 2016)",
    "lsuv",
)


def _override_decision(
    overrides: dict[str, Scheme | str],
    name: str,
    shape: tuple[int, ...],
    decision: rules.Decision,
    source: str,
    matched: dict[str, int],
    unfit: dict[str, list[str]],
) -> tuple[rules.Decision, str]:
    """The override that applies to parameter ``name`` (an exact name, else the first matching
    pattern), counted in ``matched``; a pattern's scheme that does not fit goes to ``unfit``."""
    key = (
        name
        if name in overrides
        else next((k for k in overrides if _is_pattern(k) and fnmatch.fnmatchcase(name, k)), None)
    )
    if key is None:
        return decision, source
    matched[key] += 1
    value = overrides[key]
    if value == KEEP:
        return rules.Decision(KEEP, {}, f"override {key!r}: keep as is", "keep"), "override"
    if isinstance(value, Scheme):
        if value.fits(shape):
            return _spec_decision(value, f"override {key!r}: {value.name}", decision.role), "override"
        if key == name:
            value.check_shape(shape)  # raises, naming the scheme and the shape
        else:
            unfit.setdefault(key, []).append(name)
    return decision, source


def _warn_unmatched(request: _Request, matched: dict[str, int], unfit: dict[str, list[str]], names: list[str]) -> None:
    """Warn (at ``plan``'s caller) about patterns that match nothing and schemes left to auto."""
    for key, count in matched.items():
        if count == 0:
            examples = closest(key.strip("*?[]."), names) or names[:3]
            warnings.warn(
                f"policy pattern {key!r} matches no parameter of the model; "
                f"parameters are named like {', '.join(repr(n) for n in examples)}",
                stacklevel=3,
            )
    if request.uniform is not None and unfit.get(""):
        names_unfit = unfit.pop("")
        warnings.warn(
            f"policy {request.uniform.name!r} cannot fill {len(names_unfit)} weight(s) ({', '.join(names_unfit[:3])}; "
            f"it needs a {request.uniform.definition.dims_text()} tensor): the auto rule is used for them",
            stacklevel=3,
        )
    for key, unfit_names in unfit.items():
        spec = request.overrides[key]
        assert isinstance(spec, Scheme)
        warnings.warn(
            f"policy pattern {key!r}: {spec.name} cannot fill {len(unfit_names)} matched parameter(s) "
            f"({', '.join(unfit_names[:3])}; it needs a {spec.definition.dims_text()} tensor): left to auto",
            stacklevel=3,
        )


def _warn_kept(entries: list[PlanEntry]) -> None:
    """Warn when more than a quarter of the parameters are left as constructed, naming them."""
    kept = [e.param for e in entries if e.keeps and e.source == "auto"]
    if entries and len(kept) > KEEP_WARNING_FRACTION * len(entries):
        warnings.warn(
            f"{len(kept)} of {len(entries)} parameters have no initlab rule and keep their constructed values "
            f"({', '.join(kept[:6])}{', ...' if len(kept) > 6 else ''}); name them in a policy dict to choose",
            stacklevel=3,
        )


def _tied_notes(model: nn.Module) -> list[str]:
    """Parameters shared by several modules appear once, under their first name."""
    first: dict[int, str] = {}
    notes = []
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            notes.append(
                f"'{name}' is the same tensor as '{first[id(p)]}' (tied): one entry, the rule of its first owner"
            )
        else:
            first[id(p)] = name
    return notes


def _uniform_decision(
    spec: Scheme, name: str, local: str, shape: tuple[int, ...], info: Any, auto: rules.Decision
) -> tuple[rules.Decision, str]:
    """A scheme-name policy: the scheme for every weight it fits, biases zero, the rest auto."""
    if "bias" in local:
        return rules.Decision("zeros", {}, f"policy {spec.name}: biases zero", "bias"), "policy"
    if info is not None and info.kind == "norm":
        return auto, "auto"
    if len(shape) >= 2 and spec.fits(shape):
        role = auto.role if auto.role != KEEP else "weight"
        blocks = auto.blocks if auto.role == "embedding" else ()  # the padding row stays zero
        return rules.Decision(
            spec.name, dict(spec.params), f"policy {spec.name}: every weight", role, 1, blocks
        ), "policy"
    if len(shape) >= 2:
        reason = auto.reason + f" ({spec.name} cannot fill shape {shape}: auto rule used)"
        return rules.Decision(auto.scheme, auto.params, reason, auto.role, auto.chunks, auto.blocks), "auto"
    return auto, "auto"
