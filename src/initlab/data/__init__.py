"""Datasets in memory: ``load(name)`` -> ``Dataset`` (digits, fashion-mnist, mnist1d, synthetic,
cifar10 and mnist under ``data_dir``), and the user's own data: ``load("table.csv",
target_column="y")``, ``.npz``/``.pt`` arrays, image folders, text (``task="lm"``),
``module:function`` and names given with ``register(name, fn)``.

See ``initlab.data.loaders`` and ``initlab.data.sources`` for sizes, splits and sources, and
docs/data-and-models.md.
"""

from __future__ import annotations

from initlab.data.dataset import STANDARDIZE_MODES, TASKS, Dataset, standardize, stratified_indices
from initlab.data.idx import read_idx, write_idx
from initlab.data.loaders import (
    FASHION_CLASSES,
    SYNTHETIC_KINDS,
    canonical_name,
    default_cache_dir,
    fashion_mnist_dirs,
    find_fashion_mnist,
    load,
    names,
    summaries,
)
from initlab.data.sources import fingerprint, register, registered

__all__ = [
    "FASHION_CLASSES",
    "STANDARDIZE_MODES",
    "SYNTHETIC_KINDS",
    "TASKS",
    "Dataset",
    "canonical_name",
    "default_cache_dir",
    "fashion_mnist_dirs",
    "find_fashion_mnist",
    "fingerprint",
    "load",
    "names",
    "read_idx",
    "register",
    "registered",
    "standardize",
    "stratified_indices",
    "summaries",
    "write_idx",
]
