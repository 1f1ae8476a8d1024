"""The on-disk cache of prepared datasets (MNIST-1D's generated arrays, Fashion-MNIST's decoded
IDX files): where it lives, and how an entry is written so that no reader sees half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def default_cache_dir() -> Path:
    """``$INITLAB_CACHE``, else ``$XDG_CACHE_HOME/initlab``, else ``~/.cache/initlab``."""
    if os.environ.get("INITLAB_CACHE"):
        return Path(os.environ["INITLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "initlab"


def cache_folder(cache_dir: str | os.PathLike[str] | bool | None) -> Path | None:
    """The folder a loader's ``cache_dir`` argument names: None or True, ``default_cache_dir()``;
    False, no cache (None); else that path."""
    if cache_dir is False:
        return None
    return default_cache_dir() if cache_dir is None or cache_dir is True else Path(cache_dir)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write`` into a temporary file beside ``path``, then rename it to ``path``: a reader never
    sees a half-written entry. Raises ``OSError`` (the caller decides whether that is fatal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=f"{path.suffix}.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
