"""Generated datasets: MNIST-1D (Greydanus 2020, from the ``mnist1d`` package, cached) and
``synthetic`` (a Gaussian mixture or a teacher network drawn from ``seed``)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from initlab import checks
from initlab.data.cache import cache_folder, write_atomically
from initlab.data.dataset import RawSplits
from initlab.errors import UserError
from initlab.seeding import derive_generator

# --- MNIST-1D --------------------------------------------------------------------------------


def _generate_mnist1d() -> dict[str, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise UserError(
            "dataset 'mnist1d' needs the mnist1d package: pip install mnist1d (or initlab[mnist1d])"
        ) from None
    args = get_dataset_args()
    # make_dataset seeds and draws from numpy's and Python's global RNGs; keep them as they were.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}


def _mnist1d_cache_key() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        from mnist1d.data import get_dataset_args

        # the url only serves the package's download, which initlab never uses
        params = {k: v for k, v in get_dataset_args(as_dict=True).items() if k != "url"}
        ver = version("mnist1d")
    except (ImportError, PackageNotFoundError):
        raise UserError(
            "dataset 'mnist1d' needs the mnist1d package: pip install mnist1d (or initlab[mnist1d])"
        ) from None
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return f"mnist1d-{ver}-{digest}"


def _read_mnist1d_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, KeyError, ValueError, EOFError):
        return None  # absent or damaged: regenerate
    if arrays["x"].ndim != 2 or len(arrays["x"]) != len(arrays["y"]) or len(arrays["x_test"]) != len(arrays["y_test"]):
        return None
    return arrays


def mnist1d(*, seed: int, cache_dir: str | os.PathLike[str] | bool | None = None) -> RawSplits:
    """MNIST-1D from its generator (about 2 s on one CPU core), cached as ``.npz``.

    ``cache_dir``: where the generated arrays are kept (default ``default_cache_dir()``);
    ``False`` disables the cache. The cache name carries the mnist1d version and a hash of the
    generator arguments, so a changed generator never serves stale data.
    """
    key = _mnist1d_cache_key()
    folder = cache_folder(cache_dir)
    path = None if folder is None else folder / f"{key}.npz"
    arrays = _read_mnist1d_cache(path) if path is not None else None
    cached = arrays is not None
    if arrays is None:
        arrays = _generate_mnist1d()
        if path is not None:
            try:
                write_atomically(path, lambda fh: np.savez(fh, **arrays))
            except OSError as exc:
                warnings.warn(f"could not cache MNIST-1D in {path.parent}: {exc}; it will be regenerated", stacklevel=3)
    to_x = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))  # noqa: E731
    to_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return RawSplits(
        to_x(arrays["x"]),
        to_y(arrays["y"]),
        to_x(arrays["x_test"]),
        to_y(arrays["y_test"]),
        10,
        {
            "source": f"mnist1d.data.make_dataset(get_dataset_args()) ({key})",
            "split": "the generator's own: first 80% train, last 20% test",
            "cache": str(path) if path is not None else None,
            "from_cache": cached,
        },
    )


# --- synthetic -------------------------------------------------------------------------------

SYNTHETIC_KINDS = ("mixture", "teacher")


def _positive_int(option: str, value: Any, minimum: int = 1) -> int:
    return checks.integer(f"synthetic {option}", value, minimum=minimum)


def synthetic(
    *,
    seed: int,
    kind: str = "mixture",
    n_train: int = 2000,
    n_test: int = 500,
    n_features: int = 32,
    n_classes: int = 4,
    separation: float = 3.0,
    hidden: int = 64,
) -> RawSplits:
    """Data drawn from ``seed`` alone, any size; class structure from one of two ``kind``s.

    ``mixture``: balanced classes (label i mod n_classes, shuffled); class means
    ``μ_k = separation · u_k``, ``u_k ~ N(0, I/n_features)`` (so ``‖μ_k‖ ≈ separation``), and
    ``x = μ_y + ε``, ``ε ~ N(0, I)``. Two classes are then separated by about
    ``separation·√2`` noise standard deviations (pairwise Bayes error ``≈ Φ(-separation/√2)``,
    1.7% at 3).
    ``teacher``: ``x ~ N(0, I)``, ``y = argmax(W₂ tanh(W₁ x))`` with ``W₁ ~ N(0, 1/n_features)``
    (hidden × n_features) and ``W₂ ~ N(0, 1/hidden)``: a noiseless rule a student MLP can learn
    exactly (classes balanced only on average).
    Generators: the means/teacher from ``(seed, "synthetic", "model")``, each split from
    ``(seed, "synthetic", split)``, so the training set does not depend on ``n_test``.
    """
    checks.choice("synthetic kind", kind, SYNTHETIC_KINDS)
    n_train, n_test = _positive_int("n_train", n_train), _positive_int("n_test", n_test)
    n_features = _positive_int("n_features", n_features)
    n_classes = _positive_int("n_classes", n_classes, 2)
    hidden = _positive_int("hidden", hidden)
    checks.real("synthetic separation", separation, low=0.0)
    g_model = derive_generator(seed, "synthetic", "model")
    if kind == "mixture":
        means = separation * torch.randn(n_classes, n_features, generator=g_model) / math.sqrt(n_features)
    else:
        w1 = torch.randn(hidden, n_features, generator=g_model) / math.sqrt(n_features)
        w2 = torch.randn(n_classes, hidden, generator=g_model) / math.sqrt(hidden)

    def split(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = derive_generator(seed, "synthetic", name)
        if kind == "mixture":
            y = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]
            x = means[y] + torch.randn(n, n_features, generator=g)
        else:
            x = torch.randn(n, n_features, generator=g)
            y = (torch.tanh(x @ w1.T) @ w2.T).argmax(dim=1)
        return x, y.to(torch.int64)

    x_train, y_train = split("train", n_train)
    x_test, y_test = split("test", n_test)
    what = (
        f"Gaussian mixture, separation {separation}"
        if kind == "mixture"
        else f"tanh teacher network, {hidden} hidden units"
    )
    return RawSplits(
        x_train,
        y_train,
        x_test,
        y_test,
        n_classes,
        {"source": f"synthetic {what}, seed {seed}", "split": "independent draws per split"},
    )
