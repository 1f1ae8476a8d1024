"""The validation split: a fixed, stratified part of the training set, for selecting settings.

``with_validation(dataset, fraction)`` carves ``round(fraction * n_train)`` samples out of the
training set, keeping the class proportions (``stratified_indices``: per-class quotas by largest
remainder, members drawn by a permutation). The draw comes from
``derive_generator(VALIDATION_SEED, "validation", dataset.name, n_train)``: it depends on the
dataset only, never on a run's seed or scheme, so every member of a comparison is trained on the
same samples and validated on the same held-out ones. The test set is not touched: learning
rates (and any other choice) are selected on validation accuracy, and the test set is used once,
for the reported numbers.

The inputs were standardized with statistics of the whole training set before the carve (the
loaders standardize once); that shares two numbers (a mean and a std) between the parts, never a
label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from initlab.errors import UserError
from initlab.seeding import derive_generator

VALIDATION_SEED = 20240611  # fixed: the split is part of the dataset, not of a run
DEFAULT_FRACTION = 0.1  # of the training set


@dataclass(frozen=True, eq=False)
class SplitDataset:
    """A dataset with train, validation and test parts (the engine evaluates ``x_val`` too).

    ``val_indices``/``train_indices`` index the original training set (sorted, disjoint, together
    all of it); ``base`` is the dataset the split was carved from. Any other attribute (``task``,
    ``spec``, ``classes`` ...) is the base's; ``meta`` is the base's plus ``"validation"``.
    """

    base: Any
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    meta: dict = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # only called for names the split lacks. "base" itself (absent while unpickling, e.g. in a
        # Ray worker) and dunders (pickle/copy protocol probes) must not recurse into the base
        if name == "base" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def x_test(self) -> torch.Tensor:
        return self.base.x_test

    @property
    def y_test(self) -> torch.Tensor:
        return self.base.y_test

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_val(self) -> int:
        return int(self.y_val.numel())

    def describe(self) -> str:
        return (
            f"{self.name}: {self.y_train.numel()} train / {self.n_val} validation / {self.y_test.numel()} test "
            f"(validation: stratified, fixed)"
        )


def validation_size(fraction: float, n_train: int) -> int:
    """``round(fraction * n_train)``, checked to leave at least one sample on each side."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise UserError(f"val_fraction: must be a number in (0, 1); got {fraction!r}")
    n_val = round(fraction * n_train)
    if not 0 < n_val < n_train:
        raise UserError(
            f"val_fraction: {fraction!r} of {n_train} training samples leaves {n_val} for validation; "
            f"allowed: a fraction giving 1..{n_train - 1}"
        )
    return n_val


def with_validation(dataset: Any, fraction: float = DEFAULT_FRACTION) -> SplitDataset:
    """``dataset`` with a stratified ``fraction`` of its training set held out for validation."""
    n_train = int(dataset.y_train.numel())
    n_val = validation_size(fraction, n_train)
    generator = derive_generator(VALIDATION_SEED, "validation", dataset.name, n_train)
    from initlab.data.dataset import stratified_indices

    val_idx = stratified_indices(dataset.y_train.cpu(), n_val, generator)
    keep = torch.ones(n_train, dtype=torch.bool)
    keep[val_idx] = False
    train_idx = keep.nonzero().flatten()
    device = dataset.x_train.device
    return SplitDataset(
        base=dataset,
        x_train=dataset.x_train[train_idx.to(device)],
        y_train=dataset.y_train[train_idx.to(device)],
        x_val=dataset.x_train[val_idx.to(device)],
        y_val=dataset.y_train[val_idx.to(device)],
        train_indices=train_idx,
        val_indices=val_idx,
        meta={
            **dict(getattr(dataset, "meta", None) or {}),
            "validation": {
                "fraction": float(fraction),
                "n_val": n_val,
                "n_train": n_train - n_val,
                "stratified": True,
                "seed": VALIDATION_SEED,
            },
        },
    )
