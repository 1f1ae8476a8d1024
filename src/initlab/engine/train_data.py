"""The data ``train`` takes, checked once: four tensors (and an optional validation split)."""

from __future__ import annotations

from typing import Any

import torch

from initlab.errors import UserError


class TrainData:
    """The four tensors of a dataset, checked (any object with these attributes will do).

    Targets by ``loss``: ``cross_entropy`` takes int64 class indices, one per sample ``(N,)`` or
    one per position ``(N, T)``; ``mse`` takes float targets ``(N, k)`` or ``(N,)``.
    """

    def __init__(self, data: Any, loss: str = "cross_entropy") -> None:
        missing = [a for a in ("x_train", "y_train", "x_test", "y_test") if not hasattr(data, a)]
        if missing:
            raise UserError(
                f"data must have x_train, y_train, x_test and y_test tensors; "
                f"{type(data).__name__} lacks {', '.join(missing)}"
            )
        for split in ("train", "test"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
                raise UserError(
                    f"data.x_{split} must be a floating tensor (N, *features); got "
                    f"{type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}"
                )
            if loss == "mse":
                if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() not in (1, 2):
                    raise UserError(
                        f"data.y_{split} must be a float tensor (N, k) of targets for loss 'mse'; got "
                        f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
                    )
            elif not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() not in (1, 2):
                raise UserError(
                    f"data.y_{split} must be an int64 tensor (N,) of class indices (or (N, T) per "
                    f"position); got {getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
                )
            if x.shape[0] != y.shape[0]:
                raise UserError(f"data.x_{split} has {x.shape[0]} samples but data.y_{split} has {y.shape[0]}")
            if loss != "mse" and y.numel() and int(y.min()) < 0:
                raise UserError(f"data.y_{split} has a negative label {int(y.min())}")
        if data.x_train.shape[0] == 0:
            raise UserError("data.x_train is empty: nothing to train on")
        if data.x_test.shape[1:] != data.x_train.shape[1:]:
            raise UserError(
                f"data.x_test samples have shape {tuple(data.x_test.shape[1:])}, "
                f"data.x_train samples {tuple(data.x_train.shape[1:])}"
            )
        self.x_train, self.y_train = data.x_train, data.y_train
        self.x_test, self.y_test = data.x_test, data.y_test
        self.loss = loss
        # Optional validation split (``initlab.data.split``): evaluated every epoch like the test set.
        self.x_val, self.y_val = getattr(data, "x_val", None), getattr(data, "y_val", None)
        if (self.x_val is None) != (self.y_val is None):
            raise UserError("data has only one of x_val and y_val; give both or neither")
        x_val, y_val = self.x_val, self.y_val
        if (
            x_val is not None
            and y_val is not None
            and (x_val.shape[1:] != self.x_train.shape[1:] or x_val.shape[0] != y_val.shape[0])
        ):
            raise UserError(
                f"data.x_val {tuple(x_val.shape)} and data.y_val {tuple(y_val.shape)} do not "
                f"match the training samples {tuple(self.x_train.shape[1:])}"
            )
        if loss == "mse":
            for name in ("y_train", "y_test", "y_val"):
                y = getattr(self, name)
                if y is not None and y.dtype != self.x_train.dtype:
                    setattr(self, name, y.to(self.x_train.dtype))
            self.max_label = -1
        else:
            labels = [self.y_train, self.y_test] + ([self.y_val] if self.y_val is not None else [])
            self.max_label = max(int(y.max()) for y in labels if y.numel())

    def to(self, device: torch.device) -> None:
        """Move the tensors to ``device`` (no copy when they are there already)."""
        for name in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
