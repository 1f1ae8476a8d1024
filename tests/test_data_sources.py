"""The user's own data: every format built on the fly, read back, fingerprinted, and refused when broken."""

from __future__ import annotations

import csv
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data import fingerprint, load, register, sources
from initlab.data.idx import write_idx
from initlab.errors import UserError


def blobs(n: int = 60, features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian blobs with labels 0/1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, features)) + 4.0 * y[:, None]
    return x, y


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# --- arrays ----------------------------------------------------------------------------------


def test_npz_with_x_y_is_split_by_initlab_stratified_and_fixed(tmp_path):
    x, y = blobs(50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load(str(tmp_path / "d.npz"))
    assert (ds.n_train, ds.n_test) == (40, 10)
    assert ds.y_test.tolist().count(0) == ds.y_test.tolist().count(1) == 5  # stratified
    again = load(str(tmp_path / "d.npz"))
    assert torch.equal(ds.x_test, again.x_test)  # the split is fixed
    src = ds.spec["source"]
    assert src["path"] == str((tmp_path / "d.npz").resolve()) and src["size"] == (tmp_path / "d.npz").stat().st_size
    assert len(src["sha256"]) == 64
    # standardized per feature with training statistics only
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(3), atol=1e-5)


def test_pt_with_four_tensors_keeps_its_split_and_maps_labels(tmp_path):
    x, y = blobs(40)
    labels = np.where(y == 1, 7, 3)  # any integers: mapped to 0..K-1 in sorted order
    torch.save(
        {
            "x_train": torch.tensor(x[:30]),
            "y_train": torch.tensor(labels[:30]),
            "x_test": torch.tensor(x[30:]),
            "y_test": torch.tensor(labels[30:]),
        },
        tmp_path / "d.pt",
    )
    ds = load(str(tmp_path / "d.pt"))
    assert (ds.n_train, ds.n_test, ds.num_classes) == (30, 10, 2)
    assert ds.meta["classes"] == [3, 7] and ds.y_train.tolist() == (labels[:30] == 7).astype(int).tolist()


def test_regression_targets_are_standardized_on_train_and_recorded(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 4))
    y = 50.0 + 10.0 * x[:, 0]
    np.savez(tmp_path / "r.npz", x=x, y=y)
    ds = load(str(tmp_path / "r.npz"), task="regression")
    assert ds.task == "regression" and ds.y_train.shape == (80, 1) and ds.num_classes == 1
    stats = ds.meta["target_standardize"]
    train_y = y[sources.split_indices(y, "regression")[0]]
    assert stats["mean"][0] == pytest.approx(train_y.mean()) and stats["std"][0] == pytest.approx(train_y.std())
    assert float(ds.y_train.mean()) == pytest.approx(0.0, abs=1e-5)


# --- tables ----------------------------------------------------------------------------------


def test_csv_numeric_and_categorical_columns_and_dropped_rows(tmp_path):
    rows = [[i * 0.5, ["red", "blue", "green"][i % 3], i % 2] for i in range(30)]
    rows[4][0] = ""  # a missing value: the row is dropped, not imputed
    rows[7][1] = "NA"
    path = write_csv(tmp_path / "t.csv", ["size", "colour", "label"], rows)
    with pytest.warns(UserWarning, match="dropped 2 of 30 rows"):
        ds = load(str(path), target_column="label")
    assert ds.n_train + ds.n_test == 28 and ds.meta["dropped_rows"] == 2
    assert ds.meta["categories"] == {"colour": ["blue", "green", "red"]}
    assert ds.meta["columns"] == ["size", "colour=blue", "colour=green", "colour=red"]
    assert ds.input_shape == (4,)


@pytest.mark.parametrize(
    "rows, task, column, message",
    [
        ([[1.0, "a"], [2.0, "b"]], "classification", "y", "labels that are not integers"),
        ([[1.0, 0.5], [2.0, 1.5], [3.0, 2.0]], "classification", "y", "labels that are not integers"),
        ([[1.0, "x"], [2.0, "y"]], "regression", "y", "non-numeric targets"),
        ([[1.0, 1], [2.0, 0]], "classification", "label", "'label' is not a column.*Columns: f, y"),
        ([[1.0, 1], [float("inf"), 0], [3.0, 1]], "classification", "y", "NaN or infinite"),
    ],
)
def test_bad_tables_are_one_line_user_errors(tmp_path, rows, task, column, message):
    path = write_csv(tmp_path / "bad.csv", ["f", "y"], rows)
    with pytest.raises(UserError, match=message) as info:
        load(str(path), target_column=column, task=task)
    assert "\n" not in str(info.value)


def test_csv_without_target_column_names_the_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 0], [2, 1]])
    with pytest.raises(UserError, match="--target-column.*columns: a, b"):
        load(str(path))


def test_parquet_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x, y = blobs(20)
    pq.write_table(pa.table({"f0": x[:, 0], "f1": x[:, 1], "y": y}), tmp_path / "t.parquet")
    ds = load(str(tmp_path / "t.parquet"), target_column="y")
    assert ds.input_shape == (2,) and ds.n_train + ds.n_test == 20


# --- images ----------------------------------------------------------------------------------


def make_image_folder(root: Path, mode: str = "RGB", size: int = 6, per_class: int = 5) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray((rng.random(shape) * 100 + 100 * c).astype(np.uint8), mode=mode).save(
                root / name / f"{i}.png"
            )
    return root


def test_image_folder_classes_resize_and_identity(tmp_path):
    root = make_image_folder(tmp_path / "imgs")
    ds = load(str(root), image_size=4)
    assert ds.input_shape == (3, 4, 4) and ds.meta["classes"] == ["cat", "dog"] and ds.n_train + ds.n_test == 10
    assert ds.spec["source"]["files"] == 10
    before = ds.spec["source"]["sha256"]
    (root / "dog" / "0.png").write_bytes((root / "cat" / "0.png").read_bytes())
    assert load(str(root), image_size=4).spec["source"]["sha256"] != before


def test_image_folder_refuses_mixed_modes_and_sizes(tmp_path):
    from PIL import Image

    root = make_image_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((6, 6), dtype=np.uint8), mode="L").save(root / "dog" / "grey.png")
    with pytest.raises(UserError, match="images of mixed modes"):
        load(str(root))
    (root / "dog" / "grey.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "dog" / "big.png")
    with pytest.raises(UserError, match="different sizes.*--image-size"):
        load(str(root))


# --- CIFAR-10 and MNIST on disk --------------------------------------------------------------


def make_cifar10(root: Path, n: int = 20) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        (d / name).write_bytes(pickle.dumps(batch))
    return root


def make_mnist(root: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("t10k", n // 2)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", (np.arange(count) % 10).astype(np.uint8))
    return root


def test_cifar10_and_mnist_from_data_dir(tmp_path):
    ds = load("cifar10", data_dir=str(make_cifar10(tmp_path / "c")))
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.num_classes) == (100, 20, (3, 32, 32), 10)
    assert ds.spec["source"]["files"] == 6
    ds = load("mnist", data_dir=str(make_mnist(tmp_path / "m")))
    assert (ds.n_train, ds.n_test, ds.input_shape) == (30, 15, (1, 28, 28))


def test_cifar10_refuses_a_pickle_that_is_not_arrays(tmp_path):
    root = make_cifar10(tmp_path / "c")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Path("x"), b"labels": []}))
    with pytest.raises(UserError, match="not a CIFAR-10 python batch.*refusing"):
        load("cifar10", data_dir=str(root))


def test_standard_sets_need_data_dir():
    with pytest.raises(UserError, match="cifar10.*--data-dir.*nothing is downloaded"):
        load("cifar10")


# --- text ------------------------------------------------------------------------------------


def test_text_windows_are_next_token_pairs_and_short_text_is_refused(tmp_path):
    text = "abcdefghij" * 30
    (tmp_path / "t.txt").write_text(text)
    ds = load(str(tmp_path / "t.txt"), task="lm", context=8)
    assert ds.task == "lm" and ds.num_classes == 10 and ds.input_shape == (8,)
    assert torch.equal(ds.x_train[0, 1:].long(), ds.y_train[0, :-1])  # y is x shifted by one
    assert ds.meta["vocabulary"] == "abcdefghij"
    byte = load(str(tmp_path / "t.txt"), task="lm", context=8, level="byte")
    assert byte.num_classes == 256
    with pytest.raises(UserError, match="too short for --context 64: 300 characters; need at least 650"):
        load(str(tmp_path / "t.txt"), task="lm", context=64)


# --- functions, registry, identity -------------------------------------------------------------


def make_arrays(n: int = 40):
    x, y = blobs(n)
    return (
        torch.tensor(x, dtype=torch.float32),
        torch.tensor(y),
        torch.tensor(x[:10], dtype=torch.float32),
        torch.tensor(y[:10]),
    )


def test_registered_function_and_module_function(tmp_path, monkeypatch):
    register("team-blobs", lambda n=40: make_arrays(n), overwrite=True)
    ds = load("team-blobs", n=30)
    assert ds.n_train == 30 and ds.spec["source"]["function"] == "team-blobs"
    with pytest.raises(UserError, match="already registered"):
        register("team-blobs", make_arrays)
    with pytest.raises(UserError, match="built-in dataset"):
        register("digits", make_arrays)
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def arrays():\n"
        "    x = np.arange(40.0).reshape(20, 2)\n"
        "    return {'x': x, 'y': np.arange(20) % 2}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = load("mydata:arrays")
    assert ds.n_train + ds.n_test == 20 and len(ds.spec["source"]["sha256"]) == 64


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"a": np.zeros((4, 2)), "b": np.zeros(4)}, r"keys \['a', 'b'\]; expected x_train"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "x has 4 samples but y has 3"),
        ({"x": np.array([[0.0], [np.nan], [1.0], [2.0]]), "y": np.array([0, 1, 0, 1])}, "NaN or infinite"),
        (
            {
                "x_train": np.zeros((0, 2)),
                "y_train": np.zeros(0, int),
                "x_test": np.zeros((2, 2)),
                "y_test": np.array([0, 1]),
            },
            "the train split is empty",
        ),
    ],
)
def test_bad_array_files_are_user_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load(str(tmp_path / "bad.npz"))


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        load(str(tmp_path / "absent.npz"))
    (tmp_path / "data.bin").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="cannot tell the format"):
        load(str(tmp_path / "data.bin"))


def test_fingerprint_changes_with_content_not_with_reading(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,2\n")
    first = fingerprint(path)
    assert fingerprint(path) == first
    path.write_text("a,b\n1,3\n")
    changed = fingerprint(path)
    assert changed["size"] == first["size"] and changed["sha256"] != first["sha256"]
    assert gzip  # the IDX writer compresses by suffix; imported for make_mnist's files


def test_spec_rebuilds_the_data_and_refuses_it_changed(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a", "y"], [[float(i), i % 2] for i in range(20)])
    ds = load(str(path), target_column="y")
    again = load(**ds.spec)
    assert torch.equal(ds.x_train, again.x_train) and again.spec == ds.spec
    path.write_text(path.read_text().replace("3.0,1", "3.5,1"))
    with pytest.raises(UserError, match="changed: expected sha256"):
        load(**ds.spec)
