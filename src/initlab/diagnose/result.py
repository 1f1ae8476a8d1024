"""What ``diagnose`` returns: per-layer records, flags, the Jacobian spectrum, the theory's prediction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

FLAG_KINDS = ("nonfinite", "vanishing", "exploding", "dead", "saturated", "symmetric")


@dataclass(frozen=True)
class LayerStats:
    """Measurements of one weighted layer (a module with a weight of >= 2 dims) on the batch.

    Attributes:
        name: dotted module name (``"(model)"`` for the root; ``"name#2"`` for a module's
            second call).
        kind: ``"linear"``, ``"conv"``, ``"conv_transpose"``, ``"embedding"``, ``"bilinear"``
            or ``"other"``.
        activation: the activation module that follows the layer (only dropout, normalization,
            pooling, reshaping modules in between), by registered name; ``None`` when none does.
        units: output features (channels for convolutions).
        fan_in: inputs per unit (``in/groups × kernel``), from the weight's shape.
        out_mean: mean of the layer's output ``y`` over batch, units and positions.
        out_var: second moment ``mean(y²)`` of the output: mean-field theory's ``q``.
        grad_var: ``mean(g²)``, ``g = ∂ℓ_n/∂y`` the per-sample loss gradient w.r.t. the output.
        grad_sq_norm: ``mean_n ||∂ℓ_n/∂y_n||²``: the per-sample gradient norm², which a healthy
            network keeps from layer to layer whatever the widths (used by the backward flags).
        dead_frac: fraction of units whose output (after the following activation, or the
            layer's own output when none follows) is exactly 0 for every sample and position
            of the batch: a ReLU unit that never fires passes no signal and gets no gradient.
        saturated_frac: fraction of output entries in a saturating activation's flat tails:
            ``|tanh| > 0.99`` (also hardtanh, softsign), sigmoid within 0.01 of 0 or 1; ``None``
            when the following activation does not saturate.
        symmetric_frac: fraction of units with a twin in the same layer: identical incoming
            weights and bias, or identical (non-constant) activations on every sample.
        weight_norm: Frobenius norm of the weight.
        sigma_w2: ``fan_in × mean(W²)``: the mean-field ``σ_w²`` of the layer.
        nonfinite_frac: fraction of the layer's output entries that are NaN or ±inf (an
            overflowed forward pass); such units are never counted as twins.
    """

    name: str
    kind: str
    activation: str | None
    units: int
    fan_in: int
    out_mean: float
    out_var: float
    grad_var: float
    grad_sq_norm: float
    dead_frac: float
    saturated_frac: float | None
    symmetric_frac: float
    weight_norm: float
    sigma_w2: float
    nonfinite_frac: float = 0.0


@dataclass(frozen=True)
class Flag:
    """A finding: ``kind`` in ``FLAG_KINDS``, the ``layer`` it concerns, a one-line ``message``
    and the ``value`` that triggered it (a ratio or a fraction)."""

    kind: str
    layer: str
    message: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}: {self.layer}: {self.message}"


@dataclass(frozen=True)
class Predicted:
    """Mean-field prediction for one layer: ``out_var`` (``q^l`` from ``theory.variance_map``)
    and ``grad_var`` (``theory.gradient_map`` anchored at the measured last layer)."""

    name: str
    out_var: float
    grad_var: float


@dataclass(frozen=True)
class Diagnosis:
    """Signal propagation of a model at init on one batch; see ``initlab.diagnose``.

    ``predicted`` is ``None`` when the theory does not cover the model; ``predicted_note``
    then says why. ``jacobian_singular_values`` is ``None`` unless asked for; otherwise a
    ``(samples, k)`` tensor, descending per sample, ``jacobian_method`` ``"exact"`` (all
    singular values) or ``"randomized"`` (the top ``k``).
    """

    layers: list[LayerStats]
    flags: list[Flag]
    predicted: list[Predicted] | None = None
    predicted_note: str = ""
    jacobian_singular_values: torch.Tensor | None = None
    jacobian_method: str | None = None
    batch_size: int = 0
    loss: str = "projection"
    mode: str = "eval"
    tied: dict[str, str] = field(default_factory=dict)  # layer -> layer holding the same weight tensor
    planned_zero: tuple[str, ...] = ()  # layers a plan zeroed on purpose: not flagged dead or symmetric

    def flagged(self, kind: str) -> list[Flag]:
        """The flags of one kind."""
        return [f for f in self.flags if f.kind == kind]

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per layer: every ``LayerStats`` field plus
        ``pred_out_var`` and ``pred_grad_var`` (``None`` where there is no prediction)."""
        preds = {p.name: p for p in self.predicted or []}
        records = []
        for layer in self.layers:
            rec = asdict(layer)
            pred = preds.get(layer.name)
            rec["pred_out_var"] = pred.out_var if pred else None
            rec["pred_grad_var"] = pred.grad_var if pred else None
            records.append({k: _jsonable(v) for k, v in rec.items()})
        return records

    def jacobian_summary(self) -> dict[str, Any] | None:
        """Pooled statistics of the singular values, or ``None`` when not computed."""
        sv = self.jacobian_singular_values
        if sv is None:
            return None
        flat = sv.flatten().double()
        return {
            "method": self.jacobian_method,
            "samples": int(sv.shape[0]),
            "per_sample": int(sv.shape[1]),
            "max": float(flat.max()),
            "median": float(flat.median()),
            "min": float(flat.min()),
            "mean_sq": float(flat.pow(2).mean()),
            # std of log σ: 0 for a perfectly conditioned (isometric) map
            "log_std": float(flat.clamp_min(1e-300).log().std()) if flat.numel() > 1 else 0.0,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (what ``initlab diagnose --json`` prints)."""
        sv = self.jacobian_singular_values
        return {
            "batch_size": self.batch_size,
            "loss": self.loss,
            "mode": self.mode,
            "tied": dict(self.tied),
            "planned_zero": list(self.planned_zero),
            "layers": self.to_records(),
            "flags": [asdict(f) | {"value": _jsonable(f.value)} for f in self.flags],
            "predicted_note": self.predicted_note,
            "jacobian": None
            if sv is None
            else {
                **(self.jacobian_summary() or {}),
                "singular_values": [[_jsonable(float(v)) for v in row] for row in sv.double()],
            },
        }

    def table(self) -> str:
        """The per-layer table as aligned text."""
        preds = {p.name: p for p in self.predicted or []}
        head = [
            "layer",
            "kind",
            "act",
            "units",
            "out_mean",
            "out_var",
            "pred_var",
            "grad_var",
            "pred_grad",
            "dead",
            "sat",
            "sym",
            "|W|",
        ]
        rows = []
        for s in self.layers:
            p = preds.get(s.name)
            rows.append(
                [
                    s.name,
                    s.kind,
                    s.activation or "-",
                    str(s.units),
                    _num(s.out_mean),
                    _num(s.out_var),
                    _num(p.out_var) if p else "-",
                    _num(s.grad_var),
                    _num(p.grad_var) if p else "-",
                    _pct(s.dead_frac),
                    _pct(s.saturated_frac),
                    _pct(s.symmetric_frac),
                    _num(s.weight_norm),
                ]
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        left = {0, 1, 2}

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        return "\n".join([line(head)] + [line(r) for r in rows])

    def flag_lines(self, max_per_kind: int = 3) -> list[str]:
        """One line per flag; beyond ``max_per_kind`` flags of a kind, one line naming the rest."""
        lines: list[str] = []
        for kind in FLAG_KINDS:
            flags = self.flagged(kind)
            lines += [str(f) for f in flags[:max_per_kind]]
            rest = flags[max_per_kind:]
            if rest:
                names = ", ".join(f.layer for f in rest[:6]) + (", ..." if len(rest) > 6 else "")
                lines.append(f"{kind}: and {len(rest)} more layers ({names})")
        return lines

    def summary(self) -> str:
        """Table, flags (or "no flags") and the theory/Jacobian notes, as printed by the CLI."""
        parts = [self.table(), ""]
        lines = self.flag_lines()
        parts += [f"flags ({len(self.flags)}):"] + [f"  {ln}" for ln in lines] if lines else ["flags: none"]
        if self.predicted is None and self.predicted_note:
            parts.append(f"theory: {self.predicted_note}")
        js = self.jacobian_summary()
        if js:
            parts.append(
                f"input-output Jacobian ({js['method']}, {js['samples']} samples x {js['per_sample']} singular values): "
                f"max {js['max']:.4g}, median {js['median']:.4g}, min {js['min']:.4g}, "
                f"mean sigma^2 {js['mean_sq']:.4g}, std log sigma {js['log_std']:.3g}"
            )
        return "\n".join(parts)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the signal-propagation plot (forward and backward second moments per layer,
        measured vs predicted; dead/saturated/symmetric fractions; the Jacobian spectrum when
        computed) to ``path`` (format from the suffix, e.g. ``.png``, ``.svg``)."""
        from initlab.diagnose.plot import plot_diagnosis

        return plot_diagnosis(self, Path(path), title=title)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if value == 0 or value >= 0.01 else "<1%"
