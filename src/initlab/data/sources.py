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
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from initlab.data.dataset import Dataset
from initlab.data.prepare import (  # noqa: F401  (re-exported: these were defined here)
    SPLIT_KEYS,
    TEST_FRACTION,
    finish,
    split_indices,
    to_numpy,
)
from initlab.errors import UserError

ARRAY_SUFFIXES = (".npz", ".pt", ".pth")
TABLE_SUFFIXES = (".csv", ".parquet")
TEXT_SUFFIXES = (".txt", ".text", ".md", ".py")

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
