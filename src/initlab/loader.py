"""The one loader of ``"module:function"`` targets (``initlab plan``, ``build``, ``diagnose``, ``compare``).

A target is ``package.module:attr`` (imported with the working directory searched first, as
``python -m`` does) or ``path/to/file.py:attr`` (executed as a module, its folder searched
for its own imports). ``attr`` may be dotted (``module:Class.factory``). ``sys.path`` is put
back as it was after the import: loading a target never changes where later imports look.
Every failure is one ``UserError`` naming the target: a bad form, a missing file, a module
that cannot be imported (with its exception), a missing attribute, a factory that needs
arguments or raises (``call_factory``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from initlab.errors import UserError

FORMS = "'package.module:function' or 'path/to/file.py:function'"


@contextlib.contextmanager
def _searched_first(folder: str) -> Iterator[None]:
    """``folder`` at the front of ``sys.path`` for the block only."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _is_file_target(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or (os.altsep is not None and os.altsep in where)


def _exception_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _import_file(where: str, target: str) -> Any:
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{target!r}: no such file {where!r}; expected {FORMS}")
    name = f"initlab_user_{path.stem}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{target!r}: cannot import {where!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look a class's module up by name
    try:
        with _searched_first(str(path.parent)):
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"cannot import {where!r} for {target!r}: {_exception_text(exc)}") from None
    return module


def _import_module(where: str, target: str) -> Any:
    try:
        with _searched_first(os.getcwd()):
            return importlib.import_module(where)
    except Exception as exc:
        raise UserError(f"cannot import module {where!r} for {target!r}: {_exception_text(exc)}") from None


def load_object(target: str) -> Any:
    """The object ``target`` (``"module:attr"`` or ``"file.py:attr"``) names."""
    if not isinstance(target, str):
        raise UserError(f"target: got {target!r}; expected {FORMS}")
    where, sep, attr = target.strip().rpartition(":")
    if not sep or not where or not attr or any(not part for part in attr.split(".")):
        raise UserError(f"target: got {target!r}; expected {FORMS}")
    module = _import_file(where, target) if _is_file_target(where) else _import_module(where, target)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{target!r}: module {where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_callable(target: str) -> Callable[..., Any]:
    """``load_object``, refusing anything that cannot be called."""
    obj = load_object(target)
    if not callable(obj):
        raise UserError(f"{target!r} is not callable (a {type(obj).__name__})")
    return obj


def call_factory(factory: Callable[..., Any], label: str, /, **kwargs: Any) -> Any:
    """``factory(**kwargs)``; a factory that needs other arguments or raises is one ``UserError``.

    The message names the factory (``label``) and the exception, e.g.
    ``factory 'nets:make' failed: TypeError: make() missing 1 required positional argument: 'n'``.
    """
    try:
        return factory(**kwargs)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"factory {label} failed: {_exception_text(exc)}") from None
