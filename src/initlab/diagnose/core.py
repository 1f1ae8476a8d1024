"""``diagnose``: one forward and one backward pass with hooks, measured per weighted layer."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.diagnose.flags import Thresholds, compute_flags
from initlab.diagnose.jacobian import jacobian_singular_values
from initlab.diagnose.predict import ChainLayer, predict_chain
from initlab.diagnose.probe import Probe, Record, layer_kind, weight_twins
from initlab.diagnose.result import Diagnosis, LayerStats
from initlab.errors import UserError
from initlab.layers import (
    BATCH_NORM_TYPES,
    DROPOUT_TYPES,
    activation_of_module,
    first_tensor,
)

__all__ = ["diagnose", "layer_kind"]

# Leaf modules a mean-field chain may contain besides its Linear/Conv layers (eval mode).
_CHAIN_LINK_TYPES: tuple[type, ...] = (nn.Identity, nn.Flatten, *DROPOUT_TYPES)


def _is_chain_link(module: nn.Module) -> bool:
    return isinstance(module, _CHAIN_LINK_TYPES) or activation_of_module(module) is not None


def _loss(y: torch.Tensor, targets: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """Per-sample losses summed over the batch, so that gradients are per sample."""
    if targets is None:
        proj = torch.randn(y.shape, generator=generator, device=generator.device, dtype=torch.float32).to(y.device)
        return (y.float() * proj).sum(), "projection"
    if not isinstance(targets, torch.Tensor):
        raise UserError(f"targets must be a tensor or None; got {type(targets).__name__}")
    if not torch.is_floating_point(targets) and y.dim() >= 3 and tuple(targets.shape) == tuple(y.shape[:-1]):
        # sequence logits (B, T, V) with targets (B, T): classes on the last axis, as LMs return them
        y = y.movedim(-1, 1)
    if not torch.is_floating_point(targets):
        expected = (y.shape[0], *y.shape[2:])
        if y.dim() < 2 or tuple(targets.shape) != expected:
            raise UserError(
                f"integer targets of shape {tuple(targets.shape)} do not fit outputs of shape {tuple(y.shape)}; "
                f"allowed: class indices of shape {expected} (or {tuple(y.shape[:1]) + tuple(y.shape[2:])[:-1]} "
                "for sequence logits (B, T, V))"
            )
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= y.shape[1]):
            raise UserError(
                f"targets hold classes {int(targets.min())}..{int(targets.max())}; allowed: 0..{y.shape[1] - 1}"
            )
        return F.cross_entropy(y.float(), targets.to(y.device), reduction="sum"), "cross_entropy"
    if tuple(targets.shape) != tuple(y.shape):
        raise UserError(
            f"float targets of shape {tuple(targets.shape)} do not fit outputs of shape {tuple(y.shape)}; "
            "allowed: the output's shape (squared error) or integer class indices (cross-entropy)"
        )
    return 0.5 * (y.float() - targets.to(y.device).float()).pow(2).sum(), "squared_error"


def _tied_layers(records: list[Record]) -> dict[str, str]:
    """Layer name -> an earlier, distinct layer that holds the very same weight tensor (tied on purpose)."""
    owner: dict[int, Record] = {}
    out: dict[str, str] = {}
    for rec in records:
        prev = owner.setdefault(id(rec.module.weight), rec)
        if prev.module is not rec.module:
            out.setdefault(rec.name, prev.name)
    return out


def _cloned_layers(records: list[Record]) -> dict[str, str]:
    """Layer name -> an earlier distinct module with bit-identical, non-constant weights that are
    not the same tensor (tied weights are reported as tied, not as clones)."""
    seen: dict[tuple, list[Record]] = {}
    out: dict[str, str] = {}
    done: set[int] = set()
    tensors: set[int] = set()
    for rec in records:
        if id(rec.module) in done or id(rec.module.weight) in tensors:
            continue
        done.add(id(rec.module))
        tensors.add(id(rec.module.weight))
        w = rec.module.weight.detach()
        if w.numel() < 2 or bool(w.amax() == w.amin()):
            continue  # zero/constant init: already a symmetry finding within the layer
        key = (tuple(w.shape), float(w.sum(dtype=torch.float64)))
        for other in seen.get(key, []):
            if torch.equal(other.module.weight.detach(), w):
                out[rec.name] = other.name
                break
        seen.setdefault(key, []).append(rec)
    return out


def _chain(model: nn.Module, probe: Probe, inputs: torch.Tensor, y: Any) -> tuple[list[ChainLayer] | None, str]:
    """The chain of weighted layers when the forward pass was one (else ``None`` and why)."""
    previous = inputs
    chain: list[ChainLayer] = []
    by_module = {rec.module: rec for rec in probe.records}
    if len(by_module) != len(probe.records):
        return None, "no prediction: a layer is called more than once (shared weights)"
    for module, first_in, output in probe.trace:
        kind = probe.kinds.get(module, (None, None))[1]
        if kind not in ("linear", "conv") and not _is_chain_link(module):
            return None, f"no prediction: {type(module).__name__} is not part of a chain the theory covers"
        if first_in is not previous:
            return (
                None,
                "no prediction: the model is not a plain chain of its modules (skip connections or functional ops)",
            )
        previous = output
        if kind is not None:
            rec = by_module[module]
            chain.append(ChainLayer(module, rec.activation, rec.elements))
    if previous is not y:
        return None, "no prediction: the model output is not the last module's output"
    return chain, ""


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    jacobian: bool = False,
    generator: torch.Generator | None = None,
    train: bool | None = None,
    plan: Any = None,
    thresholds: Thresholds | None = None,
    jacobian_samples: int = 16,
    jacobian_rank: int = 64,
) -> Diagnosis:
    """Signal propagation of ``model`` at init on the batch ``inputs``, forward and backward.

    One forward pass with hooks on every weighted layer (a module with its own ``weight`` of
    >= 2 dims: Linear, Conv, ConvTranspose, Embedding, Bilinear, ...) and one backward pass of

    - ``targets=None``: the random projection ``ℓ = Σ_n <r_n, y_n>``, ``r ~ N(0, 1)`` entrywise
      from ``generator``, so the output layer's gradient has second moment 1;
    - integer ``targets``: summed cross-entropy; float ``targets`` (the output's shape):
      summed ``½ (y - t)²``.

    Losses are summed over the batch, so gradients are per sample. The gradients come from
    ``torch.autograd.grad`` w.r.t. a zero added to each layer's output: no ``.grad`` of the
    model is written. The model runs in eval mode (no dropout noise; BatchNorm uses its running
    statistics) unless ``train=True``; its modes and buffers (BatchNorm running statistics) are
    restored afterwards. Which activation follows a layer is read from the activation *modules*
    run after it (only dropout, normalization, pooling or reshaping modules in between);
    activations applied as functions inside ``forward`` are invisible. See ``LayerStats`` for
    each measurement, ``Thresholds`` for the flags.

    ``.predicted`` holds the mean-field variance map (``initlab.theory``) when the model is a
    chain of Linear/Conv layers, activation modules, Flatten, Identity and Dropout, each fed
    by the previous one's output, with zero-mean weights; ``.predicted_note`` says otherwise.

    With ``jacobian=True``, ``.jacobian_singular_values`` holds the singular values of
    ``∂y_n/∂x_n`` for the first ``jacobian_samples`` inputs (exact for small models, the top
    ``jacobian_rank`` by randomized SVD for large ones; see ``initlab.diagnose.jacobian``).

    Args:
        model: an ``nn.Module`` with at least one weighted layer.
        inputs: a batch (first dim) of at least 2 inputs the model accepts.
        targets: optional, see above.
        jacobian: compute the Jacobian spectrum.
        generator: for the random projection and randomized SVD probes; a fresh
            ``torch.Generator()`` seeded 0 when omitted. Same generator state, same result.
        train: ``None`` (default): as the model will train where it matters at init:
            normalization layers in train mode (BatchNorm uses the batch's statistics, as in
            the first training step; with fresh running statistics eval mode would measure a
            different network), dropout off; ``True``: the whole model in train mode (dropout
            then draws from torch's global RNG, saved and restored around the pass); ``False``:
            eval mode.
        plan: the ``initlab.Plan`` the model was initialized with: layers whose weight it
            zeroed on purpose (residual branch ends) are not flagged as dead or symmetric.
        thresholds: when flags fire (``Thresholds()`` by default).
        jacobian_samples: how many inputs the Jacobian is computed for.
        jacobian_rank: singular values per sample of the randomized estimate.

    >>> import torch, initlab
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> d = initlab.diagnose(net, torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    >>> [s.name for s in d.layers]
    ['0', '2']
    """
    thresholds = _check_arguments(model, inputs, thresholds, jacobian_samples, jacobian_rank)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    probe = Probe(model, inputs.shape[0])
    out, loss_name = _forward_backward(model, inputs, targets, generator, train, probe)
    layers = [_layer_stats(rec) for rec in probe.records]
    predicted, note = _prediction(model, probe, inputs, out, layers)
    singular_values, method = (
        _jacobian_in_eval_mode(model, inputs[:jacobian_samples], jacobian_rank, generator) if jacobian else (None, None)
    )
    return Diagnosis(
        layers=layers,
        flags=compute_flags(layers, thresholds, _cloned_layers(probe.records), _planned_zero(plan)),
        predicted=predicted,
        predicted_note=note,
        jacobian_singular_values=singular_values,
        jacobian_method=method,
        batch_size=int(inputs.shape[0]),
        loss=loss_name,
        mode=_mode_name(model, train),
        tied=_tied_layers(probe.records),
        planned_zero=tuple(sorted(_planned_zero(plan))),
    )


def _check_arguments(model: Any, inputs: Any, thresholds: Any, jacobian_samples: Any, jacobian_rank: Any) -> Thresholds:
    """``diagnose``'s arguments checked before anything runs; the thresholds to use."""
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1:
        raise UserError(f"inputs must be a batch tensor (first dim = samples); got {type(inputs).__name__}")
    if inputs.shape[0] < 2:
        raise UserError(
            f"inputs has batch size {inputs.shape[0]}; allowed: >= 2 (dead and symmetric units are judged over the batch)"
        )
    for name, value, lo in (("jacobian_samples", jacobian_samples, 1), ("jacobian_rank", jacobian_rank, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise UserError(f"{name}={value!r} is invalid; allowed: an integer >= {lo}")
    thresholds = thresholds or Thresholds()
    if not isinstance(thresholds, Thresholds):
        raise UserError(f"thresholds must be an initlab.diagnose.Thresholds; got {type(thresholds).__name__}")
    if not any(layer_kind(m) for m in model.modules()):
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise UserError(
            f"model {type(model).__name__} has no weighted layer (modules: {', '.join(kinds)}); "
            "allowed: a model with a Linear, Conv or other module with a weight of >= 2 dims"
        )
    return thresholds


def _forward_backward(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    generator: torch.Generator,
    train: bool | None,
    probe: Probe,
) -> tuple[torch.Tensor, str]:
    """One hooked forward and backward pass: (the output tensor, the loss's name).

    The global RNG, the modules' modes and every buffer (train mode updates BatchNorm running
    statistics) are put back afterwards, and the probe's hooks removed.
    """
    modes = {m: m.training for m in model.modules()}
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if train is not False else []
    rng = torch.random.fork_rng(devices=[])
    rng.__enter__()
    try:
        _set_mode(model, train)
        with torch.enable_grad():
            try:
                y = model(inputs)
            except (RuntimeError, IndexError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(
                    f"the model failed on inputs of shape {tuple(inputs.shape)} ({inputs.dtype}): {first}"
                ) from None
            probe.finish()
            out = first_tensor(y)
            if out is None:
                raise UserError(f"the model returned a {type(y).__name__}; diagnose needs a tensor output")
            if not probe.records:
                raise UserError(
                    "no weighted layer ran in the forward pass; allowed: a model that calls a Linear, Conv or similar layer"
                )
            loss, loss_name = _loss(out, targets, generator)
            wrt = probe.probes or [p for p in model.parameters() if p.requires_grad]
            if wrt and loss.requires_grad:
                torch.autograd.grad(loss, wrt, allow_unused=True)
    finally:
        rng.__exit__(None, None, None)
        probe.remove()
        _restore_modes(modes)
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return out, loss_name


def _prediction(
    model: nn.Module, probe: Probe, inputs: torch.Tensor, out: torch.Tensor, layers: list[LayerStats]
) -> tuple[Any, str]:
    """The mean-field prediction for a plain chain (``predict_chain``), else None and why not."""
    chain, note = _chain(model, probe, inputs, out)
    if chain is None:
        return None, note
    return predict_chain(chain, layers, float(inputs.detach().double().pow(2).mean()))


def _jacobian_in_eval_mode(
    model: nn.Module, inputs: torch.Tensor, rank: int, generator: torch.Generator
) -> tuple[torch.Tensor, str]:
    """``jacobian_singular_values`` with the model in eval mode; its modes are put back after."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        return jacobian_singular_values(model, inputs, rank=rank, generator=generator)
    finally:
        _restore_modes(modes)


def _restore_modes(modes: dict[nn.Module, bool]) -> None:
    for module, mode in modes.items():
        module.training = mode


def _layer_stats(rec: Record) -> LayerStats:
    """A probe record as the ``LayerStats`` of ``Diagnosis.layers`` (NaN gradients read as 0)."""
    w = rec.module.weight.detach()
    twins = weight_twins(rec)
    if rec.act_twins is not None and rec.act_twins.numel() == twins.numel():
        twins |= rec.act_twins.cpu()
    return LayerStats(
        name=rec.name,
        kind=rec.kind,
        activation=rec.act_name,
        units=rec.units,
        fan_in=rec.fan_in,
        out_mean=rec.out_mean,
        out_var=rec.out_var,
        grad_var=0.0 if math.isnan(rec.grad_var) else rec.grad_var,
        grad_sq_norm=0.0 if math.isnan(rec.grad_sq_norm) else rec.grad_sq_norm,
        dead_frac=rec.dead_frac,
        saturated_frac=rec.saturated_frac,
        symmetric_frac=float(twins.double().mean()) if rec.units else 0.0,
        weight_norm=float(w.float().norm()),
        sigma_w2=rec.fan_in * float(w.float().pow(2).mean(dtype=torch.float64)),
        nonfinite_frac=rec.nonfinite_frac,
    )


def _mode_name(model: nn.Module, train: bool | None) -> str:
    if train is None:
        return "train-norm" if any(isinstance(m, BATCH_NORM_TYPES) for m in model.modules()) else "eval"
    return "train" if train else "eval"


def _set_mode(model: nn.Module, train: bool | None) -> None:
    """``train`` True/False: the whole model; None: normalization layers train, the rest eval."""
    if train is not None:
        model.train(train)
        return
    model.eval()
    for module in model.modules():
        if isinstance(module, BATCH_NORM_TYPES):
            module.train()


def _planned_zero(plan: Any) -> frozenset[str]:
    """Layers whose weight ``plan`` fills with zeros (a ``Plan`` or None)."""
    if plan is None:
        return frozenset()
    entries = getattr(plan, "entries", None)
    if entries is None:
        raise UserError(f"plan must be an initlab.Plan or None; got {type(plan).__name__}")
    return frozenset(e.layer for e in entries if e.scheme == "zeros" and e.param.rpartition(".")[2] == "weight")
