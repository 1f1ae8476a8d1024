"""Coordinate check (Yang et al. 2022, Tensor Programs V, Sec. D.1 / Fig. 5; Microsoft ``mup``'s
``get_coord_data``): train the same model at several widths for a few steps on one batch and
watch, per layer, the mean |activation| and the mean |Δ activation| from init. Under a
parametrization that transfers (μP) both stay flat in width; under standard parametrization
the readout's update grows with width (with Adam, roughly ∝ width).

Flatness is the fitted slope of log(value) against log(width) at the last step; a layer is
flagged where |slope| > ``SLOPE_TOLERANCE`` (0.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn

from initlab.errors import UserError
from initlab.seeding import derive_generator

SLOPE_TOLERANCE = 0.1
SP_POLICIES = ("sp", "auto")


def check_widths(widths: Any) -> list[int]:
    """At least three strictly increasing positive integers (a slope needs three points to mean much)."""
    if isinstance(widths, str):
        try:
            widths = [int(w) for w in widths.split(",") if w.strip()]
        except ValueError:
            raise UserError(f"widths: {widths!r} is invalid; allowed: integers like 64,128,256") from None
    values = list(widths) if isinstance(widths, (list, tuple)) else [widths]
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in values):
        raise UserError(f"widths must be positive integers; got {widths!r}")
    if len(values) < 3 or any(b <= a for a, b in pairwise(values)):
        raise UserError(
            f"widths must be at least three strictly increasing integers (e.g. 64,128,256,512); "
            f"got {','.join(str(w) for w in values)}"
        )
    return values


def fit_slope(widths: Sequence[int], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) on log(width); NaN when a value is not positive."""
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        return math.nan
    xs = [math.log(w) for w in widths]
    ys = [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


@dataclass
class CoordCheck:
    """Per layer and step (0 = init), the mean |activation| and mean |Δ activation| at each width."""

    policy: str
    widths: list[int]
    steps: int
    optimizer: str
    lr: float
    layers: list[str]
    act: dict[str, list[list[float]]] = field(default_factory=dict)  # layer -> [step][width index]
    delta: dict[str, list[list[float]]] = field(default_factory=dict)

    def slopes(self, step: int | None = None) -> dict[str, tuple[float, float]]:
        """layer -> (slope of mean |h|, slope of mean |Δh|) against width at ``step`` (default last)."""
        t = self.steps if step is None else step
        return {
            layer: (fit_slope(self.widths, self.act[layer][t]), fit_slope(self.widths, self.delta[layer][t]))
            for layer in self.layers
        }

    def flagged(self) -> list[str]:
        """Layers whose |slope| of |h| or |Δh| at the last step exceeds the tolerance."""
        return [
            layer
            for layer, (a, d) in self.slopes().items()
            if any(math.isfinite(s) and abs(s) > SLOPE_TOLERANCE for s in (a, d))
        ]

    def rows(self) -> list[list[str]]:
        out = []
        for layer, (a, d) in self.slopes().items():
            last = self.steps
            out.append(
                [
                    layer,
                    *(f"{v:.3g}" for v in self.delta[layer][last]),
                    f"{a:+.2f}",
                    f"{d:+.2f}",
                    "FLAT" if layer not in self.flagged() else "GROWS" if max(a, d) > 0 else "SHRINKS",
                ]
            )
        return out

    def header(self) -> list[str]:
        return ["layer", *(f"|Δh| w={w}" for w in self.widths), "slope |h|", "slope |Δh|", "verdict"]

    def summary(self) -> str:
        from initlab.report.tables import markdown

        flagged = self.flagged()
        head = (
            f"coordinate check, {self.policy}, {self.optimizer} lr={self.lr:g}, {self.steps} step(s): "
            f"{len(flagged)} of {len(self.layers)} layer(s) not flat (|slope| > {SLOPE_TOLERANCE})"
        )
        return head + "\n" + markdown(self.header(), self.rows())

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "widths": self.widths,
            "steps": self.steps,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "layers": self.layers,
            "act": self.act,
            "delta": self.delta,
            "slopes": {k: {"act": a, "delta": d} for k, (a, d) in self.slopes().items()},
            "flagged": self.flagged(),
            "tolerance": SLOPE_TOLERANCE,
        }

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        return plot_coord_checks([self], path, title=title)


def plot_coord_checks(checks: Sequence[CoordCheck], path: str | Path, title: str | None = None) -> Path:
    """Log-log plot, one column per check: mean |h| (top) and mean |Δh| (bottom) at the last step."""
    from initlab.plotting import new_figure, save

    fig, flat = new_figure(len(checks), 2, size=(4.5 * len(checks), 6.5), sharex=True)
    for col, check in enumerate(checks):
        for row, (values, label) in enumerate(((check.act, "mean |h|"), (check.delta, "mean |Δh| from init"))):
            ax = flat[row * len(checks) + col]
            for layer in check.layers:
                ax.plot(check.widths, values[layer][check.steps], marker="o", label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_ylabel(f"{label}, step {check.steps}")
            if row == 0:
                ax.set_title(f"{check.policy} ({check.optimizer}, lr {check.lr:g})")
            else:
                ax.set_xlabel("width")
        flat[col].legend(fontsize=7)
    return save(fig, Path(path), title=title)


def _default_data(model: nn.Module, seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError("coord_check needs data=(inputs, targets) for a model without nn.Linear layers")
    g = derive_generator(seed, "coord-check-data")
    x = torch.randn(batch, linears[0].in_features, generator=g)
    y = torch.randint(0, linears[-1].out_features, (batch,), generator=g)
    return x, y


def _leaf_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (n, m)
        for n, m in model.named_modules()
        if n and not list(m.children()) and any(True for _ in m.parameters(recurse=False))
    ]


def _activations(model: nn.Module, layers, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=n: seen.__setitem__(name, out.detach().float()))
        for n, m in layers
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen, logits


def _optimizer(model: nn.Module, plan: Any, mup: bool, optimizer: str, lr: float) -> torch.optim.Optimizer:
    from initlab.mup.groups import param_groups

    groups = param_groups(model, plan, lr, optimizer) if mup else [{"params": list(model.parameters()), "lr": lr}]
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr)


def coord_check(
    factory: Callable[[int], nn.Module],
    widths: Sequence[int],
    *,
    policy: str = "mup",
    base_width: int | None = None,
    steps: int = 3,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    lr: float = 1e-2,
    optimizer: str = "adam",
    seed: int = 0,
    batch: int = 64,
) -> CoordCheck:
    """Run the coordinate check of ``factory(width)`` for each width (see the module docstring).

    Args:
        factory: builds the model at a width (its weights are then set by ``policy``).
        widths: at least three strictly increasing widths.
        policy: ``"mup"`` / ``"auto+mup"`` (base shapes from ``base_width``, default the smallest
            width; μP's per-layer lrs) or ``"sp"`` (auto init, one global lr).
        data: ``(inputs, targets)`` for classification; default a Gaussian batch of ``batch``
            inputs with random labels sized from the first and last ``nn.Linear``.
        steps: optimizer steps on that batch; lr, optimizer (``"adam"``/``"sgd"``): the base rate.
    """
    from initlab.mup.table import MUP_POLICIES
    from initlab.policy import initialize

    widths = check_widths(widths)
    if policy not in (*MUP_POLICIES, *SP_POLICIES):
        raise UserError(f"policy must be one of {', '.join((*MUP_POLICIES, *SP_POLICIES))}; got {policy!r}")
    if optimizer not in ("adam", "sgd"):
        raise UserError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be an integer >= 1; got {steps!r}")
    mup = policy in MUP_POLICIES
    result: CoordCheck | None = None
    for wi, width in enumerate(widths):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(width)
        plan = initialize(
            model, policy if mup else "auto", seed=seed, base_width=(base_width or widths[0]) if mup else None
        )
        x, y = data if data is not None else _default_data(model, seed, batch)
        layers = _leaf_layers(model)
        if result is None:
            result = CoordCheck(policy, widths, steps, optimizer, float(lr), [n for n, _ in layers])
            for n in result.layers:
                result.act[n] = [[math.nan] * len(widths) for _ in range(steps + 1)]
                result.delta[n] = [[math.nan] * len(widths) for _ in range(steps + 1)]
        opt = _optimizer(model, plan, mup, optimizer, lr)
        start, _ = _activations(model, layers, x)
        for t in range(steps + 1):
            if t:
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            now, _ = _activations(model, layers, x)
            for n in result.layers:
                if n in now:
                    result.act[n][t][wi] = now[n].abs().mean().item()
                    result.delta[n][t][wi] = (now[n] - start[n]).abs().mean().item()
    assert result is not None
    return result
