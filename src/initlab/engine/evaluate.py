"""Evaluation of every member at once: mean loss, accuracy and per-example correctness."""

from __future__ import annotations

import math

import torch

from initlab.engine.backends import Backend
from initlab.engine.init import isolated_global_rng
from initlab.engine.losses import summed_loss, targets_per_sample


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """Metric sums in float64, except on MPS, which has no float64 (float32 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def evaluate(
    backend: Backend,
    params,
    buffers,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    loss: str = "cross_entropy",
    keep: bool = False,
) -> tuple[list[float], list[float], torch.Tensor | None]:
    """Mean loss and accuracy per member over the whole of ``(x, y)`` (accuracy NaN for mse); with
    ``keep``, also the per-example correctness ``(E, n)`` bool on CPU (classification: for paired
    bootstraps over test examples)."""
    members = next(iter(params.values())).shape[0]
    n = x.shape[0]
    if n == 0:
        return [math.nan] * members, [math.nan] * members, None
    acc = accumulator_dtype(x.device)
    loss_sum = torch.zeros(members, dtype=acc, device=x.device)
    correct = torch.zeros(members, dtype=torch.int64, device=x.device)
    hits = []
    with isolated_global_rng(x.device):
        for start in range(0, n, batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            logits = backend.logits(params, buffers, xb)
            sums, right = summed_loss(logits, yb, loss)
            loss_sum += sums.to(acc)
            correct += right
            if keep:
                hits.append((logits.argmax(dim=-1) == yb).cpu())
    per_sample = targets_per_sample(y, loss)
    accuracy = (correct.to(acc) / (n * per_sample)).tolist() if per_sample else [math.nan] * members
    return (loss_sum / n).tolist(), accuracy, torch.cat(hits, dim=1) if keep else None
