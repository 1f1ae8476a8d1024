"""The training losses the engine knows, for one member's outputs and targets.

``cross_entropy``: mean over every predicted target of ``-log softmax(out)[y]``; targets are
int64 class indices, one per sample ``(b,)`` (classification) or one per position ``(b, T)``
with outputs ``(b, T, C)`` (language models: the mean is over the ``b·T`` tokens, in nats).
``correct`` counts the targets whose arg-max output is right.

``mse``: mean over samples and outputs of ``(out - y)²`` (``torch.nn.functional.mse_loss``);
targets are float ``(b, k)`` and outputs are reshaped to them. ``correct`` is 0: accuracy is not
defined, and the engine records NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cross_entropy", "mse")


def member_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean loss, correct count)`` of one member on one batch (works under ``vmap``)."""
    if loss == "mse":
        return F.mse_loss(out.reshape(y.shape), y), torch.zeros((), dtype=torch.int64, device=out.device)
    logits = out.reshape(-1, out.shape[-1])
    target = y.reshape(-1)
    return F.cross_entropy(logits, target), (logits.argmax(dim=-1) == target).sum()


def summed_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member of stacked outputs ``(E, b, ...)``: the loss summed over the batch's samples
    (each sample's mean over its targets), float64, and the correct count, int64."""
    members, b = out.shape[0], out.shape[1]
    if loss == "mse":
        err = (out.reshape(members, b, -1) - y.reshape(1, b, -1)).pow(2)
        return err.mean(dim=2).sum(dim=1, dtype=torch.float64), torch.zeros(
            members, dtype=torch.int64, device=out.device
        )
    classes = out.shape[-1]
    per_sample = max(1, y[0].numel()) if y.numel() else 1
    target = y.reshape(1, -1).expand(members, -1).reshape(-1)
    ce = F.cross_entropy(out.reshape(-1, classes), target, reduction="none").view(members, b, per_sample)
    correct = (out.reshape(members, b * per_sample, classes).argmax(dim=-1) == y.reshape(1, -1)).sum(dim=1)
    return ce.mean(dim=2).sum(dim=1, dtype=torch.float64), correct


def targets_per_sample(y: torch.Tensor, loss: str) -> int:
    """How many targets ``correct`` counts per sample (0 for ``mse``: no accuracy)."""
    if loss == "mse":
        return 0
    return int(y[0].numel()) if y.numel() else 1
