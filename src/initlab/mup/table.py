"""μP (Maximal Update Parametrization) as a Plan: per-parameter class, init and lr multipliers.

Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
Hyperparameter Transfer", Table 3, written relative to a base model (its Table 8 / Microsoft's
``mup`` package: widths enter only through the width multiplier ñ = width / base_width of each
dimension that grows with width):

=============  ===============================  ==============  ==============
class          init variance (x base policy's)  Adam lr (x lr)  SGD lr (x lr)
=============  ===============================  ==============  ==============
input          1            (var ∝ 1/fan_in)    1               ñ_fan_out
(and biases,   fan_in does not grow)
 norm gains)
hidden         1            (var ∝ 1/fan_in)    1/ñ_fan_in      ñ_fan_out/ñ_fan_in
output         1/ñ_fan_in   (var ∝ 1/fan_in²)   1/ñ_fan_in      1/ñ_fan_in
fixed          1                                1               1
=============  ===============================  ==============  ==============

A parameter's class comes from which of its dimensions grow with width, as in ``mup``'s
``InfShape``: fan-out only: input-like (embeddings, the first layer, biases and norm gains of
width-sized layers); fan-in and fan-out: hidden; fan-in only: output-like (the readout); none:
fixed. This module writes the readout's 1/ñ directly into its init and lr (Table 3), so no
forward multiplier or module replacement is needed for MLPs and CNNs. A readout tied to the
input embedding is one tensor of class input; the forward must then multiply the logits by
1/ñ (``mup``'s ``MuSharedReadout``), which the record says in ``output_mult``.

Which dimensions grow: with ``base_model`` (the same architecture at the base width), those
whose size differs, with ñ = size / base size (exactly ``mup.set_base_shapes``). With
``base_width`` only: the model's width is the fan-out of its first layer (the embedding's
dimension); a dimension grows when it is a whole multiple of that width, except the model's
input features (the first layer's fan-in) and the readout's outputs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.errors import UserError

MUP_POLICIES = ("mup", "auto+mup")
CLASSES = ("input", "hidden", "output", "fixed")
# How each base scheme's variance scales with the tensor's shape (the fan it divides by).
_FAN_OF_SCHEME = {
    "xavier_uniform": "fan_avg",
    "xavier_normal": "fan_avg",
    "lecun_normal": "fan_in",
    "lecun_uniform": "fan_in",
    "uniform_fan": "fan_in",
    "torch_default": "fan_in",
    "positive": "fan_in",
    "sparse": "fan_in",
    "sparse_martens": "fan_in",
    "orthogonal": "fan_max",
    "delta_orthogonal": "fan_max",
}
_FIXED_VARIANCE = {"random_uniform", "random_normal", "uniform", "normal", "trunc_normal"}
_NO_VARIANCE = {"zeros", "ones", "constant", "identity", "dirac", "keep"}


@dataclass(frozen=True)
class MupRecord:
    """One parameter's μP facts: its class, the width multipliers of its fan-out (dim 0 in torch's
    layout, dim 1 for embeddings) and fan-in, and the multipliers μP applies to the base policy."""

    klass: str
    fan_out_mult: float
    fan_in_mult: float
    init_std_mult: float  # multiplies the base scheme's draw
    lr_mult_adam: float
    lr_mult_sgd: float
    output_mult: float = 1.0  # a forward multiplier the model must apply (tied readout only)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.klass,
            "fan_out_mult": self.fan_out_mult,
            "fan_in_mult": self.fan_in_mult,
            "init_std_mult": self.init_std_mult,
            "lr_mult_adam": self.lr_mult_adam,
            "lr_mult_sgd": self.lr_mult_sgd,
            "output_mult": self.output_mult,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MupRecord:
        try:
            return cls(
                str(d["class"]),
                float(d["fan_out_mult"]),
                float(d["fan_in_mult"]),
                float(d["init_std_mult"]),
                float(d["lr_mult_adam"]),
                float(d["lr_mult_sgd"]),
                float(d.get("output_mult", 1.0)),
                str(d.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"a μP record needs class, fan_out_mult, fan_in_mult, init_std_mult, lr_mult_adam, "
                f"lr_mult_sgd; got {d!r} ({exc})"
            ) from None

    def lr_mult(self, optimizer: str) -> float:
        return self.lr_mult_adam if optimizer == "adam" else self.lr_mult_sgd


def classify(out_grows: bool, in_grows: bool, n_growing: int) -> str:
    """μP's class from which dimensions grow (``mup``'s ``InfShape.ninf``)."""
    if n_growing == 0:
        return "fixed"
    if (out_grows and in_grows) or n_growing > 2:
        return "hidden"
    return "output" if in_grows else "input"


def multipliers(klass: str, fan_out_mult: float, fan_in_mult: float) -> tuple[float, float, float]:
    """(init variance, Adam lr, SGD lr) multipliers of Table 3 for a class, relative to the base."""
    if klass == "input":
        return 1.0, 1.0, fan_out_mult
    if klass == "hidden":
        return 1.0, 1.0 / fan_in_mult, fan_out_mult / fan_in_mult
    if klass == "output":
        return 1.0 / fan_in_mult, 1.0 / fan_in_mult, 1.0 / fan_in_mult
    return 1.0, 1.0, 1.0


def fans(shape: tuple[int, ...], embedding: bool, transposed: bool) -> tuple[int, int]:
    """(fan_out, fan_in) dims' sizes times the receptive field, in the layer's forward sense."""
    if len(shape) < 2:
        return (shape[0] if shape else 1), 1
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    out, inp = shape[0], shape[1]
    if embedding or transposed:  # Embedding (num, dim) and HF Conv1D (in, out): dim 1 is the output
        out, inp = inp, out
    return out * receptive, inp * receptive


def base_variance_correction(
    scheme: str, params: dict[str, Any], shape: tuple, base_shape: tuple, embedding: bool, transposed: bool
) -> float:
    """Factor that makes the base scheme's variance scale as 1/fan_in from base_shape to shape.

    A fan_in scheme already does (factor 1); a fan_avg (Xavier), fan_out or max-fan (orthogonal)
    scheme shrinks by its own fan's ratio, undone here; a fixed-range scheme does not shrink."""
    if scheme in _NO_VARIANCE or len(shape) < 2:
        return 1.0
    out, inp = fans(shape, embedding, transposed)
    out0, inp0 = fans(base_shape, embedding, transposed)
    mode = params.get("mode", _FAN_OF_SCHEME.get(scheme, "fixed" if scheme in _FIXED_VARIANCE else "fan_in"))
    own = {
        "fan_in": (inp, inp0),
        "fan_out": (out, out0),
        "fan_avg": (out + inp, out0 + inp0),
        "fan_max": (max(out, inp), max(out0, inp0)),
        "fixed": (1, 1),
    }[mode]
    return (own[0] / own[1]) * (inp0 / inp)


def growing_dims(shape: tuple[int, ...], width: int, frozen: set[int]) -> list[int]:
    """Dims that are whole multiples of ``width``, except those in ``frozen``."""
    return [i for i, s in enumerate(shape) if i not in frozen and s >= width and s % width == 0]


DimMults = tuple  # per dim: the width multiplier of a dim that grows with width, None for one that does not


def _shape_mults(shape, growing: list[int], ratio: float) -> DimMults:
    return tuple(ratio if i in growing else None for i in range(len(shape)))


def width_mults(
    model: nn.Module,
    entries,
    graph_layers: dict,
    *,
    base_width: int | None,
    base_model: nn.Module | None,
    order: list[str] | None = None,
) -> tuple[dict[str, DimMults], str]:
    """Per parameter, the width multiplier of each dim; the model's width; a note on how."""
    params = dict(model.named_parameters())
    if base_model is not None:
        if not isinstance(base_model, nn.Module):
            raise UserError(f"base_model must be a torch.nn.Module at the base width; got {type(base_model).__name__}")
        base = dict(base_model.named_parameters())
        out: dict[str, DimMults] = {}
        for e in entries:
            if e.param not in base or base[e.param].dim() != params[e.param].dim():
                raise UserError(
                    f"base_model has no parameter {e.param!r} of the same rank; it must be the same "
                    "architecture at the base width"
                )
            out[e.param] = tuple(None if s == b else s / b for s, b in zip(params[e.param].shape, base[e.param].shape))
        if any(m is not None for mults in out.values() for m in mults):
            return out, "base shapes from base_model: the dims whose size differs grow (mup.set_base_shapes)"
        base_width = None  # same shapes: which dims grow is read from the model's width below

    if base_width is None and base_model is None:
        raise UserError(
            "policy 'mup' needs the base shapes: pass base_width=<the width the hyperparameters were "
            "tuned at> (e.g. base_width=64) or base_model=<the same model at that width> (CLI: --base-width)"
        )
    if base_width is not None and (isinstance(base_width, bool) or not isinstance(base_width, int) or base_width < 1):
        raise UserError(f"base_width must be a positive integer; got {base_width!r}")
    weights = [e for e in entries if len(e.shape) >= 2]
    if not weights:
        raise UserError("policy 'mup' found no weight matrix to read the model's width from")
    # The first layer the forward calls (parameter order when the call order is unknown).
    first = next((e for name in order or () for e in weights if e.layer == name), weights[0])
    embedding = first.kind == "embedding"
    transposed = bool(getattr(graph_layers.get(first.layer), "transposed", False))
    width = fans(first.shape, embedding, transposed)[0] // (math.prod(first.shape[2:]) if len(first.shape) > 2 else 1)
    base_width = width if base_width is None else base_width
    if width % base_width and base_width % width:
        warnings.warn(
            f"the model's width {width} (the fan-out of {first.param!r}) is not a multiple of base_width "
            f"{base_width}: the multipliers use the ratio {width / base_width:.4g}",
            stacklevel=4,
        )
    ratio = width / base_width
    out = {}
    readouts = {e.param for e in entries if e.role == "output" and len(e.shape) >= 2}
    for e in entries:
        frozen: set[int] = set()
        if e.param == first.param:
            frozen.add(0 if embedding else (0 if transposed else 1))
        if e.param in readouts:
            frozen.add(1 if transposed else 0)
        if e.param.rpartition(".")[0] in {r.rpartition(".")[0] for r in readouts} and len(e.shape) == 1:
            frozen.add(0)  # the readout's bias has the outputs' size
        out[e.param] = _shape_mults(e.shape, growing_dims(e.shape, width, frozen), ratio)
    return out, f"width {width} (fan-out of {first.param!r}) / base_width {base_width} = {ratio:.4g}"
