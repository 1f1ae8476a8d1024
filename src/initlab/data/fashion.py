"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from Zalando's IDX files: where they are looked for,
and the loader (the official 60000/10000 split)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from initlab.data.dataset import RawSplits
from initlab.data.idx import read_idx_cached
from initlab.errors import UserError

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
GET_FASHION_MNIST = (
    "Get the files with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, installs to "
    f'{SYSTEM_FASHION_MNIST}), or when online with `python -c "import torchvision; '
    "torchvision.datasets.FashionMNIST('DIR', download=True)\"` and pass data_dir=DIR "
    "(--data-dir DIR) or set INITLAB_DATA=DIR"
)


def fashion_mnist_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: ``data_dir``, ``$INITLAB_DATA``, the system dir.

    Under each base directory the files may lie directly, in ``fashion-mnist/``, or in
    torchvision's ``FashionMNIST/raw/``.
    """
    bases = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get("INITLAB_DATA"):
        bases.append(Path(os.environ["INITLAB_DATA"]))
    bases.append(SYSTEM_FASHION_MNIST)
    dirs: list[Path] = []
    for base in bases:
        for d in (base, base / "fashion-mnist", base / "FashionMNIST" / "raw"):
            if d not in dirs:
                dirs.append(d)
    return dirs


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The four Fashion-MNIST files from the first directory holding all of them; else ``UserError``."""
    partial = []
    for d in fashion_mnist_dirs(data_dir):
        found = {key: _find_file(d, stem) for key, stem in FASHION_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
        if any(found.values()):
            missing = [FASHION_FILES[k] + "[.gz]" for k, v in found.items() if v is None]
            partial.append(f"{d} lacks {', '.join(missing)}")
    searched = ", ".join(str(d) for d in fashion_mnist_dirs(data_dir))
    detail = f" ({'; '.join(partial)})" if partial else ""
    raise UserError(
        f"Fashion-MNIST not found: looked for {', '.join(s + '[.gz]' for s in FASHION_FILES.values())} "
        f"in {searched}{detail}. {GET_FASHION_MNIST}."
    )


def fashion_mnist(
    *, seed: int, data_dir: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | bool | None = None
) -> RawSplits:
    """The four IDX files, decoded through ``read_idx_cached`` in ``cache_dir`` (default
    ``default_cache_dir()``; ``False``: decode every time)."""
    from initlab.data.cache import cache_folder

    files = find_fashion_mnist(data_dir)
    cache = cache_folder(cache_dir)
    arrays = {key: read_idx_cached(path, cache) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        where = f"{files[f'x_{split}']} / {files[f'y_{split}'].name}"
        if images.ndim != 3 or labels.ndim != 1:
            raise UserError(
                f"Fashion-MNIST {where}: expected images (n, 28, 28) and labels (n,); "
                f"got {images.shape} and {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise UserError(f"Fashion-MNIST {where}: {images.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise UserError(f"Fashion-MNIST {files[f'y_{split}']}: labels {labels.min()}..{labels.max()}; allowed 0..9")
    # kept uint8 here: standardize() takes exact statistics from a histogram of the raw bytes
    x_train, x_test = (torch.from_numpy(arrays[k]).unsqueeze(1) for k in ("x_train", "x_test"))
    y_train, y_test = (torch.from_numpy(arrays[k].astype(np.int64)) for k in ("y_train", "y_test"))
    return RawSplits(
        x_train,
        y_train,
        x_test,
        y_test,
        10,
        {
            "source": f"Fashion-MNIST IDX files in {files['x_train'].parent}",
            "split": "official (60000 train / 10000 test)",
            "classes": list(FASHION_CLASSES),
        },
    )
