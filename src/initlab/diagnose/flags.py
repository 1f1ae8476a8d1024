"""Flags: the rules that turn per-layer measurements into findings, with documented thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass

from initlab.diagnose.result import Flag, LayerStats
from initlab.errors import UserError


@dataclass(frozen=True)
class Thresholds:
    """When ``diagnose`` raises a flag.

    Attributes:
        vanishing: forward: ``out_var`` of the last weighted layer over the first's below this;
            backward: ``grad_sq_norm`` of the first over the last's below this. Default 1e-3:
            a factor 1000 over the depth, e.g. 0.5 per layer over 10 layers (Xavier on ReLU
            halves ``q`` per layer: 2^-29 ≈ 2e-9 over 30 layers, while He keeps it within a
            factor ~2 at width 512).
        exploding: the same ratios above this (default 1e3; tanh with ``σ_w² = 6.25`` has
            ``χ1 ≈ 1.6``: gradients grow ~1e6 over 30 layers).
        dead: a layer whose ``dead_frac`` exceeds this (default 0.5). Deliberately high: as
            a deep ReLU net aligns its inputs (the correlation map's ``c → 1``), a unit is off
            for a whole batch with probability approaching 1/2 even under He init.
        saturated: ``saturated_frac`` above this (default 0.25).
        symmetric: ``symmetric_frac`` above this (default 0: any twin units are a finding).
    """

    vanishing: float = 1e-3
    exploding: float = 1e3
    dead: float = 0.5
    saturated: float = 0.25
    symmetric: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.vanishing < 1:
            raise UserError(f"thresholds.vanishing={self.vanishing!r} is invalid; allowed: 0 < value < 1")
        if not 1 < self.exploding < math.inf:
            raise UserError(f"thresholds.exploding={self.exploding!r} is invalid; allowed: a finite value > 1")
        for name in ("dead", "saturated", "symmetric"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise UserError(f"thresholds.{name}={value!r} is invalid; allowed: 0 <= value < 1")


def _ratio_flag(direction: str, layers: list[LayerStats], values: list[float], t: Thresholds) -> Flag | None:
    first, last = values[0], values[-1]
    steps = len(values) - 1
    if direction == "forward":
        if first <= 0 or not math.isfinite(first):
            return None
        ratio, a, b = last / first, layers[0], layers[-1]
        what = "forward signal (output second moment)"
    else:
        if last <= 0 or not math.isfinite(last):
            return None
        ratio, a, b = first / last, layers[-1], layers[0]
        what = "backward signal (per-sample gradient norm²)"
    if not math.isnan(ratio) and t.vanishing <= ratio <= t.exploding:
        return None
    kind = "vanishing" if ratio < t.vanishing else "exploding"
    per_layer = ratio ** (1 / steps) if ratio > 0 and math.isfinite(ratio) else ratio
    src, dst = (first, last) if direction == "forward" else (last, first)
    return Flag(
        kind=kind,
        layer=b.name,
        message=(
            f"{what} changes by x{ratio:.3g} from {a.name} ({src:.3g}) to {b.name} ({dst:.3g}) over {steps} layers "
            f"(x{per_layer:.3g} per layer; threshold {t.vanishing:g}..{t.exploding:g})"
        ),
        value=ratio,
    )


def compute_flags(
    layers: list[LayerStats], thresholds: Thresholds, cloned: dict[str, str], exempt: frozenset[str] = frozenset()
) -> list[Flag]:
    """Flags for the measured ``layers`` (execution order); ``cloned`` maps a layer to an
    earlier, distinct module whose weights it equals; layers in ``exempt`` (zeroed on purpose
    by a plan, e.g. the last layer of a residual branch) are not flagged dead or symmetric."""
    flags: list[Flag] = []
    if len(layers) >= 2:
        for direction, values in (
            ("forward", [s.out_var for s in layers]),
            ("backward", [s.grad_sq_norm for s in layers]),
        ):
            flag = _ratio_flag(direction, layers, values, thresholds)
            if flag:
                flags.append(flag)
    for s in layers:
        if s.name.partition("#")[0] in exempt:
            continue
        if s.nonfinite_frac > 0:
            flags.append(
                Flag(
                    "nonfinite",
                    s.name,
                    f"{100 * s.nonfinite_frac:.3g}% of output entries are NaN or inf: the forward pass overflowed "
                    "(weights far too large for the dtype); statistics of this layer and later ones are not meaningful",
                    s.nonfinite_frac,
                )
            )
        if s.dead_frac > thresholds.dead:
            flags.append(
                Flag(
                    "dead",
                    s.name,
                    f"{100 * s.dead_frac:.0f}% of {s.units} units output exactly 0 for every sample"
                    f"{' after ' + s.activation if s.activation else ''} (threshold {100 * thresholds.dead:.0f}%)",
                    s.dead_frac,
                )
            )
        if s.saturated_frac is not None and s.saturated_frac > thresholds.saturated:
            flags.append(
                Flag(
                    "saturated",
                    s.name,
                    f"{100 * s.saturated_frac:.0f}% of {s.activation} outputs are in its flat tails "
                    f"(threshold {100 * thresholds.saturated:.0f}%)",
                    s.saturated_frac,
                )
            )
        if s.symmetric_frac > thresholds.symmetric or s.name in cloned:
            parts = []
            if s.symmetric_frac > thresholds.symmetric:
                parts.append(
                    f"{100 * s.symmetric_frac:.0f}% of {s.units} units have a twin (identical incoming weights "
                    "or identical activations): they will stay identical under training"
                )
            if s.name in cloned:
                parts.append(f"same weights as {cloned[s.name]} (a cloned layer)")
            flags.append(Flag("symmetric", s.name, "; ".join(parts), s.symmetric_frac))
    return flags
