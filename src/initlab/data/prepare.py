"""Arrays -> ``Dataset``: the checks and steps every user source goes through (``finish``).

A split made here (``x, y`` without a test part) holds out ``TEST_FRACTION`` of the samples,
drawn once from ``derive_generator(0, "user-data", "split")`` (stratified by class for
classification): the same data always gives the same split, whatever the seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from initlab.data.dataset import TASKS, Dataset, stratified_indices
from initlab.data.dataset import standardize as standardize_splits
from initlab.errors import UserError
from initlab.seeding import derive_generator

TEST_FRACTION = 0.2
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_numpy(value: Any, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where} is not an array ({exc})") from None
    if array.dtype == object or array.dtype.kind in "USV":
        raise UserError(f"{where} holds {array.dtype} values; expected numbers")
    return array


def _check_finite(array: np.ndarray, where: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise UserError(
            f"{where} holds NaN or infinite values (first at index {tuple(int(i) for i in bad)}); "
            f"expected finite numbers: drop or fill them before"
        )


def _labels(y_train: np.ndarray, y_test: np.ndarray, where: str) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Integer class labels mapped to 0..K-1 in sorted order; the original labels are returned."""
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise UserError(f"{where}: {name} has shape {y.shape}; classification needs one label per sample (n,)")
        integral = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
        if not integral:
            sample = y[~(y == np.round(y))][:1] if y.dtype.kind == "f" else y[:1]
            raise UserError(
                f"{where}: {name} holds labels that are not integers (e.g. {sample.tolist()}); "
                f"classification needs integer class labels (use --task regression for real targets)"
            )
    y_train, y_test = y_train.reshape(-1).astype(np.int64), y_test.reshape(-1).astype(np.int64)
    classes = np.unique(np.concatenate([y_train, y_test]))
    to_index = {int(c): i for i, c in enumerate(classes)}
    remap = np.vectorize(to_index.__getitem__, otypes=[np.int64])
    return (
        torch.from_numpy(remap(y_train) if y_train.size else y_train),
        torch.from_numpy(remap(y_test) if y_test.size else y_test),
        [int(c) for c in classes],
    )


def _targets(y_train: np.ndarray, y_test: np.ndarray, where: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Real targets as ``(n, k)`` float32, standardized per target with training statistics."""
    if y_train.dtype.kind not in "iufb":
        raise UserError(f"{where}: regression targets must be numbers; got {y_train.dtype}")
    y_train = y_train.reshape(len(y_train), -1).astype(np.float64)
    y_test = y_test.reshape(len(y_test), -1).astype(np.float64)
    mean, std = y_train.mean(axis=0), y_train.std(axis=0)
    if np.any(std < 1e-12):
        raise UserError(f"{where}: a regression target is constant on the training set (std 0); nothing to learn")
    stats = {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "test_var": (y_test.var(axis=0) if len(y_test) else np.full_like(mean, math.nan)).tolist(),
    }

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((a - mean) / std).astype(np.float32))

    return as_tensor(y_train), as_tensor(y_test), stats


def split_indices(y: np.ndarray, task: str, n_test: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``TEST_FRACTION`` held out, fixed, stratified for classification."""
    n = len(y)
    if n < 2:
        raise UserError(f"cannot split {n} sample(s) into train and test; need at least 2")
    n_test = n_test or max(1, round(TEST_FRACTION * n))
    g = derive_generator(0, "user-data", "split")
    if task == "classification":
        test = stratified_indices(torch.from_numpy(np.asarray(y).reshape(-1).astype(np.int64)), n_test, g).numpy()
    else:
        test = np.sort(torch.randperm(n, generator=g)[:n_test].numpy())
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _subset(n: int, limit: int | None, y: torch.Tensor, task: str, seed: int, tag: str) -> torch.Tensor | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UserError(f"{tag}={limit!r} is invalid; allowed: an integer >= 1 (or None for all)")
    if limit >= n:
        return None
    g = derive_generator(seed, "user-data", tag)
    if task == "classification":
        return stratified_indices(y, limit, g)
    return torch.sort(torch.randperm(n, generator=g)[:limit]).values


def finish(
    name: str,
    arrays: Mapping[str, Any],
    *,
    task: str,
    source: dict,
    where: str,
    seed: int = 0,
    standardize: str | None = None,
    flatten: bool = False,
    limit_train: int | None = None,
    limit_test: int | None = None,
    spec: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Checked arrays -> ``Dataset``: split if needed, labels or targets, subsets, standardization.

    ``arrays``: ``x_train, y_train, x_test, y_test`` or ``x, y``. Checks, each a one-line
    ``UserError`` naming ``where``: matching sample counts, finite values, integer labels
    (classification), numeric targets (regression), no empty split. ``standardize``: default
    ``feature`` for flat inputs and ``global`` for images; ``lm`` inputs are token ids, never
    standardized. ``num_classes`` fixes the vocabulary (``lm``); else it is the number of labels.
    """
    if task not in TASKS:
        raise UserError(f"task={task!r} is not allowed; allowed: {', '.join(TASKS)}")
    meta = dict(meta or {})
    parts = _split_parts(arrays, task, where, meta)
    _check_parts(parts, task, where)
    y_train, y_test, num_classes = _labels_or_targets(parts, task, where, meta, num_classes)
    x_train = torch.from_numpy(np.ascontiguousarray(parts["x_train"]))
    x_test = torch.from_numpy(np.ascontiguousarray(parts["x_test"]))
    x_train, y_train = _limited(x_train, y_train, "limit_train", limit_train, task, seed, meta)
    x_test, y_test = _limited(x_test, y_test, "limit_test", limit_test, task, seed, meta)
    if task == "lm":
        mode = "none"
    else:
        mode = standardize or ("feature" if x_train.ndim == 2 else "global")
    if x_train.dtype == torch.bool:
        x_train, x_test = x_train.to(torch.float32), x_test.to(torch.float32)
    x_train, x_test, stats = standardize_splits(x_train, x_test, mode)
    meta["standardize"] = stats
    if flatten:
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    full_spec = {
        "name": name,
        "task": task,
        "seed": seed,
        "flatten": bool(flatten),
        "standardize": mode,
        "limit_train": limit_train,
        "limit_test": limit_test,
        **(spec or {}),
        "source": source,
    }
    meta["source"] = where
    return Dataset(
        name,
        x_train.contiguous(),
        y_train.contiguous(),
        x_test.contiguous(),
        y_test.contiguous(),
        num_classes,
        full_spec,
        meta,
        task=task,
    )


def _split_parts(arrays: Mapping[str, Any], task: str, where: str, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The four split arrays: given, or ``x, y`` split by initlab (noted in ``meta["split"]``)."""
    keys = set(arrays)
    if set(SPLIT_KEYS) <= keys:
        return {k: to_numpy(arrays[k], f"{where}: {k}") for k in SPLIT_KEYS}
    if not {"x", "y"} <= keys:
        raise UserError(f"{where} has keys {sorted(keys)}; expected x_train, y_train, x_test, y_test (or x, y)")
    x, y = to_numpy(arrays["x"], f"{where}: x"), to_numpy(arrays["y"], f"{where}: y")
    if len(x) != len(y):
        raise UserError(f"{where}: x has {len(x)} samples but y has {len(y)}")
    if task == "classification":
        _labels(y, y[:0], where)  # integer labels before a stratified split
    _check_finite(y, f"{where}: y")
    train, test = split_indices(y, task)
    meta["split"] = (
        f"initlab's: {len(test)} test of {len(y)} ({100 * TEST_FRACTION:.0f}%), fixed"
        f"{', stratified' if task == 'classification' else ''} (derive_generator(0, 'user-data', 'split'))"
    )
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def _check_parts(parts: dict[str, np.ndarray], task: str, where: str) -> None:
    """Sample counts, non-empty splits, numeric finite values, one sample shape (flat x made 2-D)."""
    for split in ("train", "test"):
        x, y = parts[f"x_{split}"], parts[f"y_{split}"]
        if x.ndim < 2 and task != "lm":
            x = parts[f"x_{split}"] = x.reshape(len(x), 1)
        if len(x) != len(y):
            raise UserError(f"{where}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise UserError(f"{where}: the {split} split is empty; expected at least one sample")
        if x.dtype.kind not in "iufb":
            raise UserError(f"{where}: x_{split} holds {x.dtype} values; expected numbers")
        _check_finite(x, f"{where}: x_{split}")
        _check_finite(y, f"{where}: y_{split}")
    if parts["x_train"].shape[1:] != parts["x_test"].shape[1:]:
        raise UserError(
            f"{where}: x_train samples have shape {parts['x_train'].shape[1:]} but x_test "
            f"samples {parts['x_test'].shape[1:]}"
        )


def _labels_or_targets(
    parts: dict[str, np.ndarray], task: str, where: str, meta: dict[str, Any], num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(y_train, y_test, num_classes)`` for ``task``: class indices, standardized targets or tokens."""
    if task == "classification":
        y_train, y_test, classes = _labels(parts["y_train"], parts["y_test"], where)
        meta.setdefault("classes", classes)
        num_classes = len(classes)
        n = len(y_train) + len(y_test)
        if num_classes > 50 and num_classes > 0.1 * n:
            import warnings

            warnings.warn(
                f"{where}: {num_classes} distinct labels in {n} samples look like real-valued targets; "
                f"pass --task regression if they are",
                stacklevel=4,
            )
        if num_classes < 2:
            raise UserError(f"{where}: every label is {classes[0]}; classification needs at least 2 classes")
        return y_train, y_test, num_classes
    if task == "regression":
        y_train, y_test, stats = _targets(parts["y_train"], parts["y_test"], where)
        meta["target_standardize"] = stats
        return y_train, y_test, int(y_train.shape[1])
    y_train = torch.from_numpy(parts["y_train"].astype(np.int64))
    y_test = torch.from_numpy(parts["y_test"].astype(np.int64))
    return y_train, y_test, int(num_classes or int(max(y_train.max(), y_test.max())) + 1)


def _limited(
    x: torch.Tensor, y: torch.Tensor, tag: str, limit: int | None, task: str, seed: int, meta: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` cut to ``limit`` samples (``tag``: ``limit_train``/``limit_test``), noted in ``meta``."""
    keep = _subset(len(x), limit, y, task, seed, tag)
    if keep is None:
        return x, y
    meta[tag] = f"{'stratified ' if task == 'classification' else ''}subsample of {len(x)}"
    return x[keep], y[keep]
