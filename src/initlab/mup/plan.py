"""``initlab.plan(model, "mup" | "auto+mup", base_width=...)``: the base policy, rewritten by μP.

``"auto+mup"`` keeps the auto rules (scheme per layer and activation, with their reasons) as
the base init; ``"mup"`` uses Table 3's plain base, N(0, 1/fan_in) for every weight matrix
(biases zero, norms as auto). μP then multiplies each draw by ``init_std_mult`` and records
the lr multipliers (``initlab.mup.table``); at width == base_width every multiplier is 1 and
the entries are the base policy's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.mup.table import (
    MupRecord,
    base_variance_correction,
    classify,
    fans,
    multipliers,
    width_mults,
)

PLAIN_BASE = {"scheme": "variance_scaling", "params": {"scale": 1.0, "mode": "fan_in", "distribution": "normal"}}


def _plain_base(entry):
    if len(entry.shape) < 2 or entry.keeps or entry.kind == "norm" or entry.scheme == "zeros":
        return entry
    return replace(
        entry,
        scheme=PLAIN_BASE["scheme"],
        params=dict(PLAIN_BASE["params"]),
        reason="μP base (Yang et al. 2022, Table 3): N(0, 1/fan_in)",
        source="policy",
    )


def _tied_params(model: nn.Module) -> set[str]:
    """First names of parameters that several modules share (a tied embedding and readout)."""
    first: dict[int, str] = {}
    tied = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            tied.add(first[id(p)])
        else:
            first[id(p)] = name
    return tied


def _record(entry, dims, layers: dict, tied: bool) -> tuple[MupRecord, bool]:
    """The μP record of one entry and whether the classifier had to guess its class."""
    info = layers.get(entry.layer)
    embedding, transposed = entry.kind == "embedding", bool(getattr(info, "transposed", False))
    if len(dims) >= 2:
        out_i, in_i = (1, 0) if (embedding or transposed) else (0, 1)
        out_m, in_m = dims[out_i], dims[in_i]
    else:
        out_m, in_m = (dims[0] if dims else None), None
    n_growing = sum(m is not None for m in dims)
    klass = classify(out_m is not None, in_m is not None, n_growing)
    out_mult, in_mult = out_m or 1.0, in_m or 1.0
    placed = info is not None and info.kind not in ("", "container") and not entry.keeps
    guessed = (not placed and len(entry.shape) >= 2) or n_growing > 2
    var_mult, adam, sgd = multipliers(klass, out_mult, in_mult)
    base_shape = tuple(round(s / m) if m else s for s, m in zip(entry.shape, dims))
    correction = base_variance_correction(entry.scheme, entry.params, entry.shape, base_shape, embedding, transposed)
    std_mult = math.sqrt(var_mult * correction)
    why = {
        "input": "input-like: only its fan-out grows; init var ∝ 1/fan_in (unchanged), Adam lr x1, SGD lr x ñ_out",
        "hidden": "hidden: fan-in and fan-out grow; init var ∝ 1/fan_in, Adam lr x 1/ñ_in, SGD lr x ñ_out/ñ_in",
        "output": "output-like: only its fan-in grows; init var ∝ 1/fan_in² (x 1/ñ_in), Adam and SGD lr x 1/ñ_in",
        "fixed": "fixed: no dimension grows with width; base init and lr",
    }[klass]
    output_mult = 1.0
    if tied:
        output_mult = 1.0 / (out_mult if embedding else in_mult)
        why += (
            f"; tied to the readout: one tensor of class {klass}, multiply the logits by {output_mult:.4g} "
            "on the forward (mup's MuSharedReadout)"
        )
    if guessed:
        why += " (class guessed from its shape: the model's graph does not place it)"
    why += " (Yang et al. 2022, Table 3)"
    if correction != 1.0:
        why += f"; base scheme rescaled by {math.sqrt(correction):.4g} so its variance goes as 1/fan_in"
    return MupRecord(klass, out_mult, in_mult, std_mult, adam, sgd, output_mult, why), guessed


def mup_plan(
    model: nn.Module,
    policy: str,
    *,
    base_width: int | None = None,
    base_model: nn.Module | None = None,
    example_input: Any = None,
    stacklevel: int = 3,
):
    """The μP plan of ``model`` (see the module docstring). ``policy``: ``"mup"`` or ``"auto+mup"``."""
    from initlab.policy.introspect import introspect
    from initlab.policy.policies import plan as make_plan

    if base_width is None and base_model is None:
        raise UserError(
            f"policy {policy!r} needs the base shapes: pass base_width=<the width the hyperparameters "
            "were tuned at> (e.g. base_width=64) or base_model=<the same model at that width> (CLI: --base-width)"
        )
    base = make_plan(model, "auto", example_input=example_input)
    entries = list(base.entries) if policy == "auto+mup" else [_plain_base(e) for e in base.entries]
    graph = introspect(model, example_input)
    layers = graph.layers
    dims, how = width_mults(model, entries, layers, base_width=base_width, base_model=base_model, order=graph.order)
    tied = _tied_params(model)
    out, guessed = [], []
    for e in entries:
        record, unsure = _record(e, dims[e.param], layers, e.param in tied)
        if unsure:
            guessed.append(f"{e.param!r} (placed as {record.klass})")
        out.append(replace(e, mup=record.to_dict()))
    if guessed:
        warnings.warn(
            f"μP could not place {len(guessed)} parameter(s) from the model's graph and classed them by "
            f"shape: {', '.join(guessed[:6])}; pass base_model= to fix the base shapes",
            stacklevel=stacklevel,
        )
    notes = list(base.notes) + [f"μP (Yang et al. 2022): {how}"]
    return base.with_(entries=tuple(out), policy=policy, notes=tuple(notes))


__all__ = ["PLAIN_BASE", "fans", "mup_plan"]
