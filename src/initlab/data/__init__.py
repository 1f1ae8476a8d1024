"""Datasets in memory: ``load(name)`` -> ``Dataset`` (digits, fashion-mnist, mnist1d, synthetic).

See ``initlab.data.loaders`` for sizes, splits and sources, and docs/data-and-models.md.
"""

from __future__ import annotations

from initlab.data.dataset import STANDARDIZE_MODES, Dataset, standardize, stratified_indices
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

__all__ = [
    "FASHION_CLASSES", "STANDARDIZE_MODES", "SYNTHETIC_KINDS", "Dataset", "canonical_name",
    "default_cache_dir", "fashion_mnist_dirs", "find_fashion_mnist", "load", "names", "read_idx",
    "standardize", "stratified_indices", "summaries", "write_idx",
]
