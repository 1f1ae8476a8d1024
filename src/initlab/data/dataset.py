"""The in-memory ``Dataset`` and the deterministic helpers the loaders share.

A dataset is four tensors held in memory (the engine indexes batches directly; no DataLoader),
inputs float32 standardized with statistics of the training split only, labels int64.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from initlab.errors import UserError

STANDARDIZE_MODES = ("global", "feature", "none")
TASKS = ("classification", "regression", "lm")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory, for one ``task``.

    ``x_*`` are float32 of shape ``(n, *input_shape)``: images keep ``(C, H, W)`` (Fashion-MNIST
    ``(1, 28, 28)``, digits ``(1, 8, 8)``), signals and feature vectors are flat (MNIST-1D
    ``(40,)``, synthetic ``(n_features,)``); ``load(..., flatten=True)`` makes every input flat.

    ``y_*`` and ``num_classes`` by ``task``:

    - ``classification``: int64 class indices ``(n,)`` in ``[0, num_classes)``;
    - ``regression``: float32 targets ``(n, num_classes)`` (``num_classes`` = number of outputs),
      standardized with training statistics (``meta["target_standardize"]``: mean and std per
      target, to report errors in the original units);
    - ``lm``: ``x`` holds token ids ``(n, context)`` as float32 (exact below 2^24; the model
      casts them back), ``y`` the next tokens ``(n, context)`` int64 in ``[0, num_classes)``
      (``num_classes`` = vocabulary size).

    ``spec`` holds the arguments that rebuild this dataset with ``load(**spec)`` (JSON-safe, for
    config hashes); ``meta`` holds provenance: source, split, standardization statistics.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    spec: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"Dataset {self.name!r}: task={self.task!r} is not allowed; allowed: {', '.join(TASKS)}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise UserError(f"Dataset {self.name!r}: x_{split} must be a floating tensor; got {_kind(x)}")
            if self.task == "regression":
                if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.ndim != 2:
                    raise UserError(
                        f"Dataset {self.name!r}: y_{split} must be a 2-D floating tensor "
                        f"(n, outputs) for regression; got {_kind(y)}"
                    )
            elif (
                not isinstance(y, torch.Tensor)
                or y.dtype != torch.int64
                or y.ndim != (1 if self.task == "classification" else 2)
            ):
                want = "1-D" if self.task == "classification" else "2-D (n, context)"
                raise UserError(f"Dataset {self.name!r}: y_{split} must be a {want} int64 tensor; got {_kind(y)}")
            if x.shape[0] != y.shape[0]:
                raise UserError(
                    f"Dataset {self.name!r}: x_{split} has {x.shape[0]} samples but y_{split} has {y.shape[0]}"
                )
            if self.task == "regression":
                if y.shape[1] != self.num_classes:
                    raise UserError(
                        f"Dataset {self.name!r}: y_{split} has {y.shape[1]} targets; num_classes "
                        f"(outputs) is {self.num_classes}"
                    )
            elif y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise UserError(
                    f"Dataset {self.name!r}: y_{split} holds labels {int(y.min())}..{int(y.max())}; "
                    f"allowed 0..{self.num_classes - 1}"
                )
        if tuple(self.x_train.shape[1:]) != tuple(self.x_test.shape[1:]):
            raise UserError(
                f"Dataset {self.name!r}: train inputs {tuple(self.x_train.shape[1:])} and test inputs "
                f"{tuple(self.x_test.shape[1:])} differ in shape"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape, e.g. ``(1, 28, 28)`` or ``(40,)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_features(self) -> int:
        """``prod(input_shape)``: the width of a flattened input."""
        return math.prod(self.input_shape)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def describe(self) -> str:
        """One line: name, sizes, input shape, classes (outputs, vocabulary), standardization."""
        std = self.meta.get("standardize", {})
        how = std.get("mode", "?")
        if how == "global":
            how = f"standardized with train mean {std['mean']:.4g}, std {std['std']:.4g}"
        elif how == "feature":
            how = "standardized per feature with train statistics"
        else:
            how = "not standardized"
        what = {
            "classification": f"{self.num_classes} classes",
            "regression": f"{self.num_classes} target(s)",
            "lm": f"vocabulary {self.num_classes}",
        }[self.task]
        return f"{self.name}: {self.n_train} train / {self.n_test} test, input {self.input_shape}, {what}, {how}"

    def to(self, device: str | torch.device) -> Dataset:
        """The same dataset with its four tensors on ``device``."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def flatten(self) -> Dataset:
        """The same dataset with inputs of shape ``(n, in_features)``."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.reshape(self.n_train, -1),
            x_test=self.x_test.reshape(self.n_test, -1),
        )


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.ndim}-D {value.dtype} tensor"
    return type(value).__name__


def _global_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of every value of ``x``, in float64.

    uint8 inputs (IDX images) go through a 256-bin histogram: exact sums, a fixed summation
    order, and no 8-byte copy of a 47-million-value tensor.
    """
    if x.dtype == torch.uint8:
        counts = torch.bincount(x.reshape(-1), minlength=256).to(torch.float64)
        values = torch.arange(256, dtype=torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        return float(mean), float(var.sqrt())
    x64 = x.to(torch.float64)
    return float(x64.mean()), float(x64.std(correction=0))


def standardize(
    x_train: torch.Tensor, x_test: torch.Tensor, mode: str = "global"
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Standardize both splits with statistics of ``x_train`` only; returns float32 and the stats.

    .. math:: x' = (x - \\mu_{train}) / \\sigma_{train}

    ``global``: one mean and (population) std over every training value (the usual choice for
    images: pixels keep their relative scale). ``feature``: per input feature, as sklearn's
    ``StandardScaler``; a feature constant on the training set (σ < 1e-12, e.g. a border pixel
    of digits) is centred and left unscaled. ``none``: only cast to float32.
    Statistics are computed in float64, then applied in float32 (elementwise, so the same
    inputs give the same bits whatever the thread count).
    """
    if mode not in STANDARDIZE_MODES:
        raise UserError(f"standardize={mode!r} is not allowed; allowed: {', '.join(STANDARDIZE_MODES)}")
    train, test = x_train.to(torch.float32), x_test.to(torch.float32)
    if mode == "none":
        return train, test, {"mode": "none"}
    if mode == "global":
        mean, std = _global_stats(x_train)
        if not std > 0:
            raise UserError("cannot standardize: every training input value is the same")
        m32, s32 = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        stats: dict[str, Any] = {"mode": "global", "mean": mean, "std": std}
    else:
        x64 = x_train.to(torch.float64)
        mean64, std64 = x64.mean(dim=0), x64.std(dim=0, correction=0)
        constant = std64 < 1e-12
        m32, s32 = mean64.float(), torch.where(constant, torch.ones_like(std64), std64).float()
        stats = {"mode": "feature", "constant_features": int(constant.sum())}
    # in place on float32 copies: the bits of (x - m) / s without two temporaries per split
    # (60,000 Fashion-MNIST images, global: 0.35 -> 0.15 s of CPU)
    train = train if train is not x_train else train.clone()
    test = test if test is not x_test else test.clone()
    return train.sub_(m32).div_(s32), test.sub_(m32).div_(s32), stats


def stratified_indices(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices of ``labels`` keeping the class proportions; sorted ascending.

    Each class c with n_c samples gets ``floor(count·n_c/n)`` places, and the places still free
    go to the classes with the largest remainders (ties to the lower class), so the total is
    exactly ``count``. Within a class the members come from a random permutation drawn from
    ``generator``: the same generator state always selects the same indices.
    """
    n = int(labels.numel())
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= n:
        raise UserError(f"cannot select {count!r} samples out of {n}; allowed: an integer in 1..{n}")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = [count * int(c) / n for c in counts]
    quota = [math.floor(q) for q in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - quota[i]), i))
    for i in order[: count - sum(quota)]:
        quota[i] += 1
    chosen = []
    for cls, k in zip(classes.tolist(), quota):
        members = torch.nonzero(labels == cls).flatten()
        perm = torch.randperm(members.numel(), generator=generator)
        chosen.append(members[perm[:k]])
    return torch.sort(torch.cat(chosen)).values


@dataclass(frozen=True)
class RawSplits:
    """A named loader's output before the shared steps of ``initlab.data.loaders.load`` (subsample,
    standardize, flatten)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    meta: dict[str, Any]
