"""Plan -> weights: ``initlab.initialize(model, policy, seed=0, data=None)``.

Every parameter draws from its own generator, ``initlab.seeding.param_generator(seed, dotted
name)``, through ``initlab.schemes.fill.fill_model_`` (the one model-filling function the
compare engine uses too): adding a layer changes no other layer's weights, a cloned layer
(``nn.TransformerEncoder`` deep-copies one) comes out different from its siblings because its
name differs, the same seed gives the same bits, and a plan entry that resolves to the same
scheme and parameters as a compare member gives that member's bits. Draws happen on the CPU in
float32 and are copied to the parameter's device and dtype, so a GPU model gets the same values
as a CPU one. The global RNG is never used.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import torch
from torch import nn

from initlab import checks
from initlab.errors import UserError
from initlab.policy.introspect import SCALED_KINDS
from initlab.policy.lsuv import DEFAULT_MAX_ITER, DEFAULT_TOL, check_data, lsuv_
from initlab.policy.plans import Plan, PlanEntry
from initlab.policy.policies import plan as make_plan
from initlab.schemes import Scheme, get_scheme
from initlab.schemes.fill import fill_model_, orthogonal_batch


@functools.lru_cache(maxsize=256)
def _cached_scheme(name: str, params_json: str) -> Scheme:
    return get_scheme(name, **json.loads(params_json))


def scheme_of(name: str, params: dict[str, Any]) -> Scheme:
    """``get_scheme(name, **params)``, validated once per (name, params): a deep plain chain has
    thousands of entries with the same scheme, and a ``Scheme`` is immutable."""
    try:
        key = json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return get_scheme(name, **params)
    return _cached_scheme(name, key)


def draw(entry: PlanEntry, shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """The values ``entry`` gives a parameter of ``shape`` (on the generator's device)."""
    spec = scheme_of(entry.scheme, entry.params)
    if entry.chunks > 1:
        rows = shape[0] // entry.chunks
        parts = [spec.sample((rows, *shape[1:]), generator=generator, dtype=dtype) for _ in range(entry.chunks)]
        values = torch.cat(parts, dim=0)
    else:
        values = spec.sample(shape, generator=generator, dtype=dtype)
    for block in entry.blocks:
        if block.stop > shape[0]:
            raise UserError(f"{entry.param}: row block {block.start}:{block.stop} exceeds {shape[0]} rows")
        fill = scheme_of(block.scheme, block.params)
        values[block.start : block.stop] = fill.sample(
            (block.stop - block.start, *shape[1:]), generator=generator, dtype=dtype
        )
    if entry.mup is not None and entry.mup.get("init_std_mult", 1.0) != 1.0:
        values = values * entry.mup["init_std_mult"]  # μP's init multiplier (initlab.mup.table)
    return values


class EntrySampler:
    """A plan entry as a ``Sampler`` for ``fill_model_``: its scheme, chunks and row blocks."""

    def __init__(self, entry: PlanEntry) -> None:
        self.entry = entry

    def sample(self, shape: tuple[int, ...], *, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        return draw(self.entry, shape, dtype, generator)

    def batch_key(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple | None:
        """Plain orthogonal entries of one shape, gain and dtype are drawn together (``fill_model_``)."""
        e = self.entry
        plain = e.chunks == 1 and not e.blocks and (e.mup is None or e.mup.get("init_std_mult", 1.0) == 1.0)
        if (
            e.scheme != "orthogonal"
            or not plain
            or len(shape) < 2
            or math.prod(shape) == 0
            or not dtype.is_floating_point
        ):
            return None
        return ("orthogonal", float(scheme_of(e.scheme, e.params).params["gain"]), shape, dtype)

    def sample_batch(self, shape: tuple[int, ...], generators: list[torch.Generator], dtype: torch.dtype):
        gain = float(scheme_of(self.entry.scheme, self.entry.params).params["gain"])
        return orthogonal_batch(shape, generators, dtype, gain)


def apply_plan(model: nn.Module, plan: Plan, *, seed: int = 0) -> None:
    """Write ``plan``'s values into ``model``'s parameters in place (``keep`` entries untouched)."""
    _check_seed(seed)
    params = dict(model.named_parameters())
    samplers: dict[str, EntrySampler] = {}
    for entry in plan.entries:
        if entry.keeps:
            continue
        if entry.param not in params:
            raise UserError(f"the plan names parameter {entry.param!r}, which the model does not have")
        samplers[entry.param] = EntrySampler(entry)
    fill_model_(model, samplers, seed=seed)


def _check_seed(seed: Any) -> None:
    checks.integer("seed", seed)


def _needs_data(policy: Any) -> bool:
    if isinstance(policy, Plan):
        return policy.refine == "lsuv"
    return isinstance(policy, str) and policy in ("lsuv", "auto+lsuv")


def lsuv_layers(plan: Plan) -> list[str]:
    """Layers LSUV rescales: Linear/Conv weights the plan fills with a non-zero scheme."""
    return [
        e.layer
        for e in plan.entries
        if e.kind in SCALED_KINDS and e.param.rpartition(".")[2] == "weight" and e.scheme not in ("zeros", "keep")
    ]


def initialize(
    model: nn.Module,
    policy: Any = "auto",
    *,
    seed: int = 0,
    data: Any = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    base_width: int | None = None,
    base_model: nn.Module | None = None,
) -> Plan:
    """Initialize ``model`` in place by ``policy`` and return the plan that was applied.

    Args:
        model: any ``torch.nn.Module``.
        policy: as for ``initlab.plan``: ``"auto"``, ``"lsuv"``, ``"auto+lsuv"``, a scheme name,
            a dict of parameter names / glob patterns to schemes, or a ``Plan``.
        seed: every parameter's generator derives from (seed, its dotted name).
        data: a batch of inputs (tensor, tuple of positional inputs, or dict of keyword inputs).
            Needed by ``"lsuv"`` and ``"auto+lsuv"``; otherwise only used to read the model
            when ``torch.fx`` cannot trace it.
        tol: LSUV's tolerance on |Var - 1|.
        max_iter: LSUV's maximum rescalings per layer.
        base_width: the base width of ``"mup"`` / ``"auto+mup"`` (``initlab.mup``).
        base_model: the same model at the base width (``"mup"`` / ``"auto+mup"``).

    Returns:
        The ``Plan`` with ``seed`` set and, for LSUV, ``plan.lsuv``: per layer the scale factor,
        the iterations and the output variance before and after.

    >>> import torch.nn as nn, initlab
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    >>> initlab.initialize(net, seed=1)["0.weight"].scheme
    'xavier_uniform'
    """
    _check_seed(seed)
    if _needs_data(policy):
        if data is None:
            name = policy.refine if isinstance(policy, Plan) else policy
            raise UserError(
                f"policy {name!r} needs data=<a batch of inputs>: LSUV scales each layer by its output "
                "variance on that batch (Mishkin & Matas 2016); pass e.g. data=x[:256]"
            )
        check_data(data)
    result = make_plan(model, policy, example_input=data, base_width=base_width, base_model=base_model)
    apply_plan(model, result, seed=seed)
    records: tuple = ()
    if result.refine == "lsuv":
        if data is None:
            raise UserError("this plan refines with LSUV and needs data=<a batch of inputs>")
        records = tuple(lsuv_(model, data, lsuv_layers(result), tol=tol, max_iter=max_iter))
    return result.with_(seed=seed, lsuv=records)
