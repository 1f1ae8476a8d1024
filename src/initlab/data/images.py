"""Images from disk: a class-per-folder tree (Pillow), CIFAR-10's python batches, MNIST's IDX files.

Nothing is downloaded. Where to get the standard sets (then pass ``--data-dir DIR``):

- CIFAR-10: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked into ``DIR``
  (it makes ``DIR/cifar-10-batches-py/``), or ``torchvision.datasets.CIFAR10(DIR, download=True)``
  when online. 50000 train / 10000 test, (3, 32, 32).
- MNIST: the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) from a mirror such as
  https://ossci-datasets.s3.amazonaws.com/mnist/, in ``DIR``, ``DIR/mnist/`` or torchvision's
  ``DIR/MNIST/raw/``. 60000 train / 10000 test, (1, 28, 28).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from initlab.data.idx import read_idx
from initlab.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
CHANNELS = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "P": None, "I": 1, "F": 1}
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


# --- a folder of images ----------------------------------------------------------------------


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(f for f in class_dir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _read_tree(
    root: Path, image_size: int | None, classes: list[str] | None, state: dict
) -> tuple[list, list, list[str], list[Path]]:
    from PIL import Image, UnidentifiedImageError

    dirs = _class_dirs(root)
    names = [d.name for d in dirs]
    if classes is not None and names != classes:
        raise UserError(f"{root}: class folders {names} differ from the training classes {classes}")
    images, labels, files = [], [], []
    for label, d in enumerate(dirs):
        found = _image_files(d)
        if not found:
            raise UserError(f"{d}: no images ({', '.join(IMAGE_SUFFIXES)}); every class folder needs at least one")
        for f in found:
            try:
                with Image.open(f) as im:
                    im.load()
                    mode, size = im.mode, im.size
                    if state.setdefault("mode", (mode, f))[0] != mode:
                        first_mode, first = state["mode"]
                        raise UserError(
                            f"images of mixed modes: {first} is {first_mode}, {f} is {mode}; expected "
                            f"one mode (convert them all to RGB or L first)"
                        )
                    if image_size is not None:
                        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                    elif state.setdefault("size", (size, f))[0] != size:
                        first_size, first = state["size"]
                        raise UserError(
                            f"images of different sizes: {first} is {first_size[0]}x{first_size[1]}, {f} is "
                            f"{size[0]}x{size[1]}; pass --image-size N to resize them all to NxN"
                        )
                    array = np.asarray(im)
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"cannot read image {f}: {exc}") from None
            if CHANNELS.get(mode) is None:
                raise UserError(
                    f"{f}: image mode {mode!r} is not supported; allowed: L, RGB, RGBA (convert palette images)"
                )
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            images.append(array)
            labels.append(label)
            files.append(f)
    return images, labels, names, files


def read_image_folder(root: Path, image_size: int | None) -> tuple[dict[str, np.ndarray], dict[str, Any], list[Path]]:
    """Arrays ``x`` (n, C, H, W) uint8 and ``y`` from ``root/CLASS/*.png`` (or ``root/train|test/CLASS``).

    Class indices follow the sorted folder names. Pillow reads every file; all must share one
    mode (L, RGB, RGBA) and, unless ``image_size`` resizes them to a square (bilinear), one size.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise UserError(f"image_size: {image_size!r} is invalid; allowed: an integer >= 1 (pixels per side)")
    state: dict = {}
    subdirs = [d.name for d in _class_dirs(root)]
    if set(subdirs) == {"train", "test"}:
        x_tr, y_tr, names, f_tr = _read_tree(root / "train", image_size, None, state)
        x_te, y_te, _, f_te = _read_tree(root / "test", image_size, names, state)
        arrays = {
            "x_train": np.stack(x_tr),
            "y_train": np.asarray(y_tr),
            "x_test": np.stack(x_te),
            "y_test": np.asarray(y_te),
        }
        files, split = f_tr + f_te, "the folder's own train/ and test/"
    else:
        if not subdirs:
            raise UserError(f"{root}: no class subfolders; expected the ImageFolder layout root/CLASS/IMAGE.png")
        x, y, names, files = _read_tree(root, image_size, None, state)
        arrays, split = {"x": np.stack(x), "y": np.asarray(y)}, None
    meta = {"classes": names, "mode": state["mode"][0], "image_size": image_size}
    if split:
        meta["split"] = split
    return arrays, meta, files


# --- CIFAR-10 --------------------------------------------------------------------------------


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses any other class."""

    ALLOWED: ClassVar[frozenset] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as exc:
        raise UserError(
            f"{path} is not a CIFAR-10 python batch ({exc}); expected the files of cifar-10-python.tar.gz"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise UserError(f"{path}: data {data.shape} and labels {labels.shape}; expected (n, 3072) and (n,)")
    return data.reshape(-1, 3, 32, 32), labels


def find_cifar10(data_dir: str | None) -> Path:
    if data_dir is None:
        raise UserError(
            "dataset 'cifar10' needs --data-dir DIR holding cifar-10-batches-py/ (unpack "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz there); nothing is downloaded"
        )
    base = Path(data_dir)
    for d in (base / "cifar-10-batches-py", base):
        if (d / "data_batch_1").is_file() and (d / "test_batch").is_file():
            return d
    raise UserError(
        f"CIFAR-10 not found in {base}: expected data_batch_1..5 and test_batch in {base}/cifar-10-batches-py "
        f"or {base} (unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz there)"
    )


def read_cifar10(data_dir: str | None) -> tuple[dict[str, np.ndarray], list[Path]]:
    d = find_cifar10(data_dir)
    train = [d / f"data_batch_{i}" for i in range(1, 6) if (d / f"data_batch_{i}").is_file()]
    parts = [_cifar_batch(p) for p in train]
    x_test, y_test = _cifar_batch(d / "test_batch")
    arrays = {
        "x_train": np.concatenate([p[0] for p in parts]),
        "y_train": np.concatenate([p[1] for p in parts]),
        "x_test": x_test,
        "y_test": y_test,
    }
    return arrays, train + [d / "test_batch"]


# --- MNIST -----------------------------------------------------------------------------------


def find_mnist(data_dir: str | None) -> dict[str, Path]:
    if data_dir is None:
        raise UserError(
            "dataset 'mnist' needs --data-dir DIR holding MNIST's four IDX files "
            "(train-images-idx3-ubyte[.gz], ...); nothing is downloaded"
        )
    base = Path(data_dir)
    for d in (base, base / "mnist", base / "MNIST" / "raw"):
        found = {}
        for key, stem in MNIST_FILES.items():
            hit = next((d / n for n in (stem + ".gz", stem) if (d / n).is_file()), None)
            if hit is not None:
                found[key] = hit
        if len(found) == 4:
            return found
    raise UserError(
        f"MNIST not found under {base} (also looked in mnist/ and MNIST/raw/): expected "
        f"{', '.join(s + '[.gz]' for s in MNIST_FILES.values())}"
    )


def read_mnist(data_dir: str | None) -> tuple[dict[str, np.ndarray], list[Path]]:
    files = find_mnist(data_dir)
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(
                f"MNIST {files[f'x_{split}']}: images {x.shape} and labels {y.shape}; expected (n, 28, 28) and (n,)"
            )
        arrays[f"x_{split}"] = x[:, None]
    return arrays, list(files.values())
