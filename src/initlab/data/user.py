"""``load_source``: the one entry for the user's data (see ``initlab.data.sources`` for the table).

Which reader runs is decided by what ``name`` is: a registered name, ``module:function``, a
folder (images), or a file by its suffix (``.npz``/``.pt``/``.pth`` arrays, ``.csv``/``.parquet``
tables, any other file is text and needs ``task="lm"``).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from initlab.data import sources
from initlab.data.dataset import TASKS, Dataset
from initlab.data.prepare import finish
from initlab.errors import UserError

# Options each kind of source accepts (beyond seed, task, standardize, flatten, limit_train/test).
SOURCE_OPTIONS = {
    "arrays": (),
    "table": ("target_column",),
    "images": ("image_size",),
    "text": ("context", "level"),
}


def _import_function(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"dataset function {spec!r} is invalid; allowed: 'package.module:function'")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:  # the console script does not put the working directory on sys.path; `python -m` does
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import module {module_name!r} for dataset {spec!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(f"dataset {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"dataset {spec!r} is not callable (a {type(target).__name__})")
    return target


def _kind(path: Path, task: str) -> str:
    if path.is_dir():
        return "images"
    suffix = path.suffix.lower()
    if suffix in sources.ARRAY_SUFFIXES:
        return "arrays"
    if suffix in sources.TABLE_SUFFIXES:
        return "table"
    if task == "lm":
        return "text"
    raise UserError(
        f"--dataset {str(path)!r}: cannot tell the format from {suffix or 'no suffix'!r}; allowed: "
        f"{', '.join(sources.ARRAY_SUFFIXES + sources.TABLE_SUFFIXES)}, an image folder, or a text "
        f"file with --task lm"
    )


def _check_options(kind: str, options: dict, where: str) -> None:
    allowed = SOURCE_OPTIONS[kind]
    extra = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if extra:
        raise UserError(
            f"{where}: option {extra[0]!r} does not apply to {kind} data; allowed: {', '.join(allowed) or 'none'}"
        )


def load_source(
    name: str,
    *,
    task: str = "classification",
    seed: int = 0,
    standardize: str | None = None,
    flatten: bool = False,
    limit_train: int | None = None,
    limit_test: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Dataset:
    """The user's data ``name`` as a ``Dataset`` for ``task`` (see the module docstring).

    ``options``: ``target_column`` (tables), ``image_size`` (image folders), ``context`` and
    ``level`` (``char``/``byte``, text), or the keyword arguments of a dataset function.
    """
    if task not in TASKS:
        raise UserError(f"task: {task!r} is not allowed; allowed: {', '.join(TASKS)}")
    common = {
        "task": task,
        "seed": seed,
        "standardize": standardize,
        "flatten": flatten,
        "limit_train": limit_train,
        "limit_test": limit_test,
    }
    key = name.strip().lower()
    if key in sources._REGISTRY:
        return sources.from_function(key, sources._REGISTRY[key], options, **common)
    path = Path(name)
    if ":" in name and not path.exists():
        return sources.from_function(name, _import_function(name), options, **common)
    if data_dir is not None and not path.is_absolute() and not path.exists():
        path = Path(data_dir) / path
    if not path.exists():
        raise UserError(
            f"--dataset {name!r}: no such file or folder; expected a .npz/.pt/.csv file, an image "
            f"folder, a text file (--task lm), module:function, or one of the dataset names"
        )
    kind = _kind(path, task)
    where = str(path)
    _check_options(kind, options, where)
    if task == "lm" and kind != "text":
        raise UserError(f"--task lm reads a text file; {where} is {kind} data")
    if kind == "text" and task != "lm":
        raise UserError(f"{where} is read as text, which only --task lm uses; got --task {task}")
    num_classes, spec = None, {}
    if kind == "arrays":
        arrays, meta, files = sources.read_arrays(path), {}, None
    elif kind == "table":
        from initlab.data.tables import read_table

        arrays, meta = read_table(path, options.get("target_column"), task)
        files, spec = None, {"target_column": options.get("target_column")}
    elif kind == "images":
        from initlab.data.images import read_image_folder

        if task != "classification":
            raise UserError(f"an image folder is labelled by its class folders: --task classification only; got {task}")
        arrays, meta, files = read_image_folder(path, options.get("image_size"))
        spec = {"image_size": options.get("image_size")}
    else:
        from initlab.data.text import read_text

        level = options.get("level") or "char"
        arrays, meta, num_classes = read_text(path, options.get("context"), level)
        files, spec = None, {"context": options.get("context"), "level": level}
    source = sources.fingerprint(path, files)
    return finish(name, arrays, source=source, where=where, spec=spec, meta=meta, num_classes=num_classes, **common)
