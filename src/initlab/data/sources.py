"""The user's own data: array files, tables, image folders, text, functions and registered names.

``load_source(name, task=...)`` turns any of these into the same in-memory ``Dataset`` the
built-in loaders return:

==========================  ===========================================================================
``--dataset``               what it reads
==========================  ===========================================================================
``path.npz`` / ``path.pt``  arrays ``x_train, y_train, x_test, y_test`` (or ``x, y``: initlab splits)
``path.csv`` / ``.parquet`` a table; ``target_column`` is the label / target (``initlab.data.tables``)
``a folder``                images in class subfolders, the ``ImageFolder`` layout (``initlab.data.images``)
``path.txt`` (task lm)      a text corpus, next-token prediction (``initlab.data.text``)
``module:function``         a function returning a ``Dataset``, the four arrays, or a dict of them
a registered name           ``register(name, fn)``: the same, under a team's own name
==========================  ===========================================================================

Every source records what identifies its data in ``Dataset.spec["source"]``: for a file its
absolute path, size in bytes and SHA-256 of its content; for a folder the same over its files;
for a function the SHA-256 of the arrays it returned. ``compare`` puts this record into the
experiment's config, so ``--resume`` and the store refuse data that changed since.

A split made by initlab (``x, y`` without a test part, tables, image folders without
``train/``/``test/``) holds out ``TEST_FRACTION`` of the samples, drawn once from
``derive_generator(0, "user-data", "split")`` (stratified by class for classification): the
same file always gives the same split, whatever the seed of the comparison.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from initlab.data.dataset import TASKS, Dataset, stratified_indices
from initlab.data.dataset import standardize as standardize_splits
from initlab.errors import UserError
from initlab.seeding import derive_generator

TEST_FRACTION = 0.2
ARRAY_SUFFIXES = (".npz", ".pt", ".pth")
TABLE_SUFFIXES = (".csv", ".parquet")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".py")
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")

_REGISTRY: dict[str, Callable[..., Any]] = {}


# --- registry --------------------------------------------------------------------------------


def register(name: str, fn: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make ``fn`` loadable as ``--dataset name`` (``load(name)``) in this process.

    ``fn(**options)`` returns a ``Dataset``, a tuple ``(x_train, y_train, x_test, y_test)``
    or a dict with those keys (or ``x, y``: initlab splits); arrays may be numpy or torch.
    The content is hashed into the config at every load, so a changed result is noticed.
    For the CLI, a module that calls ``register`` must be imported; ``module:function``
    needs no registration.
    """
    from initlab.data.loaders import names

    if not isinstance(name, str) or not name.strip() or ":" in name or os.sep in name:
        raise UserError(f"register: name={name!r} is invalid; allowed: a non-empty name without ':' or '/'")
    if not callable(fn):
        raise UserError(f"register: fn for {name!r} must be callable; got {type(fn).__name__}")
    key = name.strip().lower()
    if key in names():
        raise UserError(f"register: {name!r} is a built-in dataset; choose another name")
    if key in _REGISTRY and not overwrite:
        raise UserError(f"register: {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[key] = fn


def registered() -> list[str]:
    """Names added with ``register``."""
    return sorted(_REGISTRY)


def is_source(name: str) -> bool:
    """Whether ``name`` is one of the user's sources rather than a built-in dataset name."""
    if not isinstance(name, str):
        return False
    if name.strip().lower() in _REGISTRY:
        return True
    if ":" in name and not os.path.exists(name) and not name.startswith(("/", ".")):
        return True
    suffix = Path(name).suffix.lower()
    return (
        suffix in ARRAY_SUFFIXES + TABLE_SUFFIXES + TEXT_SUFFIXES
        or os.sep in name
        or name.startswith(".")
        or os.path.exists(name)
    )


# --- identity --------------------------------------------------------------------------------


def _sha256_file(path: Path, digest: Any = None) -> Any:
    h = digest or hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h


def fingerprint(path: str | os.PathLike[str], files: list[Path] | None = None) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a file, or of a folder's ``files`` (every file by default).

    A folder's hash covers each file's path relative to the folder and its content, in sorted
    order: renaming, adding, removing or editing a file changes it.
    """
    p = Path(path).resolve()
    if p.is_file():
        return {"path": str(p), "size": p.stat().st_size, "sha256": _sha256_file(p).hexdigest()}
    chosen = sorted(files if files is not None else (f for f in p.rglob("*") if f.is_file()))
    h = hashlib.sha256()
    size = 0
    for f in chosen:
        rel = f.resolve().relative_to(p).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(_sha256_file(f).digest())
        size += f.stat().st_size
    return {"path": str(p), "size": size, "files": len(chosen), "sha256": h.hexdigest()}


def arrays_sha256(arrays: Mapping[str, Any]) -> str:
    """SHA-256 over each array's key, dtype, shape and bytes, keys in sorted order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = (
            arrays[key].detach().cpu().contiguous()
            if isinstance(arrays[key], torch.Tensor)
            else np.ascontiguousarray(arrays[key])
        )
        a = a.numpy() if isinstance(a, torch.Tensor) else a
        h.update(f"{key}|{a.dtype}|{tuple(a.shape)}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_source(dataset: Dataset, expected: Mapping[str, Any] | None) -> Dataset:
    """``dataset``, or ``UserError`` when ``expected`` (a spec's ``source``) names other data."""
    found = dataset.spec.get("source")
    if expected is not None and dict(expected) != found:
        found = found or {}
        raise UserError(
            f"dataset {dataset.name!r} changed: expected sha256 {str(expected.get('sha256'))[:12]} "
            f"({expected.get('size', '?')} bytes), found sha256 {str(found.get('sha256'))[:12]} "
            f"({found.get('size', '?')} bytes)"
        )
    return dataset


# --- checks and finishing --------------------------------------------------------------------


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
    keys = set(arrays)
    meta = dict(meta or {})
    if set(SPLIT_KEYS) <= keys:
        parts = {k: to_numpy(arrays[k], f"{where}: {k}") for k in SPLIT_KEYS}
    elif {"x", "y"} <= keys:
        x, y = to_numpy(arrays["x"], f"{where}: x"), to_numpy(arrays["y"], f"{where}: y")
        if len(x) != len(y):
            raise UserError(f"{where}: x has {len(x)} samples but y has {len(y)}")
        if task == "classification":
            _labels(y, y[:0], where)  # integer labels before a stratified split
        _check_finite(y, f"{where}: y")
        train, test = split_indices(y, task)
        parts = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
        meta["split"] = (
            f"initlab's: {len(test)} test of {len(y)} ({100 * TEST_FRACTION:.0f}%), fixed"
            f"{', stratified' if task == 'classification' else ''} (derive_generator(0, 'user-data', 'split'))"
        )
    else:
        raise UserError(f"{where} has keys {sorted(keys)}; expected x_train, y_train, x_test, y_test (or x, y)")
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
                stacklevel=3,
            )
        if num_classes < 2:
            raise UserError(f"{where}: every label is {classes[0]}; classification needs at least 2 classes")
    elif task == "regression":
        y_train, y_test, stats = _targets(parts["y_train"], parts["y_test"], where)
        meta["target_standardize"] = stats
        num_classes = int(y_train.shape[1])
    else:
        y_train = torch.from_numpy(parts["y_train"].astype(np.int64))
        y_test = torch.from_numpy(parts["y_test"].astype(np.int64))
        num_classes = int(num_classes or int(max(y_train.max(), y_test.max())) + 1)
    x_train = torch.from_numpy(np.ascontiguousarray(parts["x_train"]))
    x_test = torch.from_numpy(np.ascontiguousarray(parts["x_test"]))
    for tag, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        x_part, y_part = (x_train, y_train) if tag == "limit_train" else (x_test, y_test)
        keep = _subset(len(x_part), limit, y_part, task, seed, tag)
        if keep is not None:
            meta[tag] = f"{'stratified ' if task == 'classification' else ''}subsample of {len(x_part)}"
            if tag == "limit_train":
                x_train, y_train = x_train[keep], y_train[keep]
            else:
                x_test, y_test = x_test[keep], y_test[keep]
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


# --- array files and functions ---------------------------------------------------------------


def read_arrays(path: Path) -> dict[str, Any]:
    """The arrays of a ``.npz`` (no pickles) or ``.pt`` (``weights_only``) file, by key."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, EOFError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {path}: {first}; expected a .npz or .pt file of arrays") from None
    if isinstance(obj, (tuple, list)) and len(obj) == 4:
        return dict(zip(SPLIT_KEYS, obj))
    if not isinstance(obj, Mapping):
        raise UserError(
            f"{path} holds a {type(obj).__name__}; expected a dict with x_train, y_train, x_test, y_test (or x, y)"
        )
    return dict(obj)


def _call_function(spec: str, fn: Callable[..., Any], options: dict) -> Any:
    import inspect

    try:
        params: Mapping[str, inspect.Parameter] = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, True
    refused = sorted(k for k in options if not takes_any and k not in params)
    if refused:
        raise UserError(
            f"dataset function {spec!r} takes no option {refused[0]!r}; its parameters: {', '.join(params) or 'none'}"
        )
    return fn(**options)


def from_function(spec: str, fn: Callable[..., Any], options: dict, **common: Any) -> Dataset:
    """A ``Dataset`` from what ``fn(**options)`` returns (a ``Dataset``, four arrays or a dict)."""
    result = _call_function(spec, fn, options)
    where = f"dataset function {spec!r}"
    if isinstance(result, Dataset):
        if result.task != common["task"]:
            raise UserError(f"{where} returned a {result.task} Dataset; --task is {common['task']}")
        arrays = {k: getattr(result, k) for k in SPLIT_KEYS}
        source = {"function": spec, "options": options, "sha256": arrays_sha256(arrays)}
        return Dataset(
            result.name,
            result.x_train,
            result.y_train,
            result.x_test,
            result.y_test,
            result.num_classes,
            {**result.spec, "name": spec, "task": result.task, "source": source},
            result.meta,
            task=result.task,
        )
    if isinstance(result, (tuple, list)) and len(result) == 4:
        result = dict(zip(SPLIT_KEYS, result))
    if not isinstance(result, Mapping):
        raise UserError(
            f"{where} returned a {type(result).__name__}; expected a Dataset, a tuple "
            f"(x_train, y_train, x_test, y_test) or a dict of those arrays"
        )
    source = {"function": spec, "options": options, "sha256": arrays_sha256(result)}
    return finish(spec, result, source=source, where=where, spec=options, **common)
