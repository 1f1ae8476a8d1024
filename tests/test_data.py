"""initlab.data: the IDX reader (good and broken files), each loader, splits, standardization."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data import Dataset, fashion, load, loaders, names, read_idx, stratified_indices, write_idx
from initlab.errors import UserError

SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


# --- IDX reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_every_type(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_as_specified(tmp_path):
    path = write_idx(tmp_path / "labels", np.arange(7, dtype=np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 1])
    assert struct.unpack(">I", raw[4:8]) == (7,)
    assert struct.unpack(">7i", raw[8:]) == tuple(range(7))


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw_named_gz = write_idx(tmp_path / "plain.gz", array, compress=False)
    gz_named_plain = write_idx(tmp_path / "packed", array, compress=True)
    assert gz_named_plain.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)


def _valid_bytes() -> bytes:
    return bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 3) + bytes(range(6))


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"\x00\x00", ["truncated", "2 bytes"]),
        (bytes([1, 0, 8, 1]) + struct.pack(">I", 1) + b"\x00", ["wrong magic number", "0x01000801"]),
        (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00", ["unknown element type code 0x07", "0x08"]),
        (bytes([0, 0, 8, 0]), ["0 dimensions"]),
        (bytes([0, 0, 8, 3]) + struct.pack(">I", 5), ["truncated", "3 dimensions"]),
        (_valid_bytes()[:-1], ["truncated", "(2, 3)", "need 6 payload bytes, found 5"]),
        (_valid_bytes() + b"\x00", ["too long", "found 7"]),
    ],
    ids=["short", "magic", "typecode", "zero-dims", "header", "payload-short", "payload-long"],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
def test_idx_broken_files_raise_user_error_naming_the_file(tmp_path, blob, words, compressed):
    path = tmp_path / ("broken.gz" if compressed else "broken")
    path.write_bytes(gzip.compress(blob) if compressed else blob)
    with pytest.raises(UserError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_idx_truncated_gzip_stream_is_a_user_error(tmp_path):
    good = gzip.compress(_valid_bytes() * 1)
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="broken gzip stream") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_idx(tmp_path / "nope-idx1-ubyte.gz")


def test_write_idx_refuses_types_without_code(tmp_path):
    with pytest.raises(UserError, match="no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# --- the cache of decoded IDX files -----------------------------------------------------------


def _decoding_fails(monkeypatch):
    from initlab.data import idx

    def refuse(*a, **k):
        raise AssertionError("decoded although a cache entry exists")

    monkeypatch.setattr(idx, "_decode", refuse)


def test_cached_idx_equals_the_file_and_a_second_read_decodes_nothing(tmp_path, monkeypatch):
    from initlab.data.idx import read_idx_cached

    array = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "a-idx3.gz", array)
    first = read_idx_cached(path, tmp_path / "cache")
    entries = list((tmp_path / "cache" / "idx").iterdir())
    assert [e.name for e in entries] == [hashlib.sha256(path.read_bytes()).hexdigest() + ".npy"]
    _decoding_fails(monkeypatch)
    second = read_idx_cached(path, tmp_path / "cache")
    for got in (first, second):
        np.testing.assert_array_equal(got, array)
        assert got.dtype == np.uint8 and got.flags.writeable


def test_an_edited_idx_file_is_never_served_from_the_cache(tmp_path):
    from initlab.data.idx import read_idx_cached

    path = write_idx(tmp_path / "labels", np.arange(6, dtype=np.int32))
    read_idx_cached(path, tmp_path / "cache")
    write_idx(path, np.arange(6, dtype=np.int32)[::-1])  # same size, other content
    np.testing.assert_array_equal(read_idx_cached(path, tmp_path / "cache"), np.arange(6)[::-1])
    assert len(list((tmp_path / "cache" / "idx").iterdir())) == 2


def test_a_damaged_cache_entry_is_decoded_again_and_an_unwritable_cache_only_warns(tmp_path):
    from initlab.data.idx import read_idx_cached

    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = write_idx(tmp_path / "a", array)
    read_idx_cached(path, tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "idx").iterdir()
    entry.write_bytes(entry.read_bytes()[:20])
    np.testing.assert_array_equal(read_idx_cached(path, tmp_path / "cache"), array)
    np.testing.assert_array_equal(np.load(entry), array)  # rewritten
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="could not cache a"):
        np.testing.assert_array_equal(read_idx_cached(path, blocker), array)
    assert read_idx_cached(path, None).tolist() == array.tolist()
    with pytest.raises(UserError, match="does not exist"):
        read_idx_cached(tmp_path / "absent", tmp_path / "cache")


def test_fashion_mnist_reads_through_the_cache_unless_told_not_to(tmp_path, no_system_data, monkeypatch):
    _fake_fashion(tmp_path / "fm")
    plain = load("fashion-mnist", data_dir=tmp_path / "fm", cache_dir=False)
    assert not (tmp_path / "cache").exists()
    decoded = load("fashion-mnist", data_dir=tmp_path / "fm")
    assert len(list((tmp_path / "cache" / "idx").iterdir())) == 4
    _decoding_fails(monkeypatch)
    cached = load("fashion-mnist", data_dir=tmp_path / "fm")
    for ds in (decoded, cached):
        assert torch.equal(ds.x_train, plain.x_train) and torch.equal(ds.y_test, plain.y_test)
        assert ds.spec == plain.spec and ds.meta == plain.meta


# --- Fashion-MNIST from files the test writes -------------------------------------------------


def _fake_fashion(directory: Path, n_train=50, n_test=20, gz=True, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for key, stem in loaders.FASHION_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide the real Fashion-MNIST locations, so only the test's directories are searched."""
    monkeypatch.setattr(fashion, "SYSTEM_FASHION_MNIST", tmp_path / "system-absent")
    monkeypatch.delenv("INITLAB_DATA", raising=False)
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path / "cache"))  # decoded files land here, not in ~/.cache


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_fashion_mnist_loads_written_files_standardized_with_train_stats(tmp_path, no_system_data, gz):
    arrays = _fake_fashion(tmp_path / "fm", gz=gz)
    ds = load("fashion-mnist", data_dir=tmp_path / "fm")
    assert ds.name == "fashion-mnist" and ds.num_classes == 10
    assert ds.x_train.shape == (50, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.in_features == 784
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    mean, std = arrays["x_train"].astype(np.float64).mean(), arrays["x_train"].astype(np.float64).std()
    assert ds.meta["standardize"]["mean"] == pytest.approx(mean, rel=1e-12)
    assert ds.meta["standardize"]["std"] == pytest.approx(std, rel=1e-12)
    expected_test = (arrays["x_test"].astype(np.float64) - mean) / std
    np.testing.assert_allclose(ds.x_test[:, 0].numpy(), expected_test, atol=1e-5)
    assert float(ds.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(ds.x_train.std(correction=0)) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["y_test"])


def test_fashion_mnist_search_order_env_and_torchvision_layout(tmp_path, no_system_data, monkeypatch):
    _fake_fashion(tmp_path / "env" / "FashionMNIST" / "raw", n_train=30, seed=1)
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "env"))
    assert load("fashion-mnist").n_train == 30  # $INITLAB_DATA, torchvision's layout
    _fake_fashion(tmp_path / "mine" / "fashion-mnist", n_train=40, seed=2)
    assert load("fashion-mnist", data_dir=tmp_path / "mine").n_train == 40  # data_dir wins


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, no_system_data):
    partial = tmp_path / "partial"
    _fake_fashion(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError) as info:
        load("fashion-mnist", data_dir=partial)
    message = str(info.value)
    assert "Fashion-MNIST not found" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "torchvision" in message and "INITLAB_DATA" in message
    assert str(partial) in message and "lacks t10k-labels-idx1-ubyte" in message
    assert "\n" not in message  # one line for the CLI


def test_fashion_mnist_broken_file_names_it(tmp_path, no_system_data):
    directory = tmp_path / "fm"
    _fake_fashion(directory)
    labels = directory / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-3]))
    with pytest.raises(UserError, match="truncated") as info:
        load("fashion-mnist", data_dir=directory)
    assert str(labels) in str(info.value)


def test_fashion_mnist_mismatched_counts_are_refused(tmp_path, no_system_data):
    directory = tmp_path / "fm"
    _fake_fashion(directory)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(49, dtype=np.uint8))
    with pytest.raises(UserError, match="50 images but 49 labels"):
        load("fashion-mnist", data_dir=directory)


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_official_split_and_statistics(monkeypatch):
    monkeypatch.delenv("INITLAB_DATA", raising=False)
    train_labels = read_idx(SYSTEM_FASHION / "train-labels-idx1-ubyte.gz")
    test_labels = read_idx(SYSTEM_FASHION / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(train_labels).tolist() == [6000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    ds = load("fashion-mnist")
    assert (ds.n_train, ds.n_test, ds.input_shape) == (60000, 10000, (1, 28, 28))
    # published pixel statistics of the training images: mean 0.2860, std 0.3530 (x 255)
    assert ds.meta["standardize"]["mean"] / 255 == pytest.approx(0.2860, abs=1e-4)
    assert ds.meta["standardize"]["std"] / 255 == pytest.approx(0.3530, abs=1e-4)
    np.testing.assert_array_equal(ds.y_train.numpy(), train_labels)
    small = load("fashion-mnist", limit_train=1000, limit_test=500, seed=3)
    assert small.y_train.bincount().tolist() == [100] * 10
    assert small.y_test.bincount().tolist() == [50] * 10


# --- digits ----------------------------------------------------------------------------------


def test_digits_fixed_stratified_split():
    from sklearn.datasets import load_digits

    ds = load("digits")
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.num_classes) == (1437, 360, (1, 8, 8), 10)
    per_class = np.bincount(load_digits().target)
    test_counts = ds.y_test.bincount().numpy()
    np.testing.assert_array_equal(ds.y_train.bincount().numpy() + test_counts, per_class)
    # largest-remainder quotas of 360: within one of 360·n_c/1797
    assert np.all(np.abs(test_counts - 360 * per_class / 1797) < 1)
    again = load("digits", seed=7)  # the split never depends on seed
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.y_train, again.y_train)


def test_digits_split_is_disjoint_and_covers_every_image():
    from sklearn.datasets import load_digits

    raw = load("digits", standardize="none", flatten=True)
    rows = {tuple(r) for r in raw.x_train.int().tolist()} | {tuple(r) for r in raw.x_test.int().tolist()}
    assert rows == {tuple(r) for r in load_digits().data.astype(int).tolist()}
    assert float(raw.x_train.min()) == 0.0 and float(raw.x_train.max()) == 16.0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_global_standardize_gives_the_bits_of_the_formula_and_leaves_its_inputs_alone(dtype):
    from initlab.data.dataset import standardize

    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, 256, (n, 1, 5, 5), generator=g).to(dtype) for n in (30, 7))
    x0, y0 = x.clone(), y.clone()
    train, test, stats = standardize(x, y, "global")
    m, s = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    assert torch.equal(train, (x0.float() - m) / s) and torch.equal(test, (y0.float() - m) / s)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_standardize_modes_use_train_statistics_only():
    glob = load("digits", flatten=True)
    assert float(glob.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(glob.x_train.std(correction=0)) == pytest.approx(1.0, abs=1e-5)
    feat = load("digits", flatten=True, standardize="feature")
    assert feat.x_train.mean(dim=0).abs().max() < 1e-5
    std = feat.x_train.std(dim=0, correction=0)
    constant = feat.meta["standardize"]["constant_features"]
    assert constant >= 1  # digits has pixels that are 0 in every training image
    assert int((std < 1e-6).sum()) == constant and torch.allclose(std[std > 1e-6], torch.ones(()), atol=1e-5)
    with pytest.raises(UserError, match="standardize='zscore'"):
        load("digits", standardize="zscore")


def test_flatten_and_describe():
    ds = load("digits", flatten=True)
    assert ds.x_train.shape == (1437, 64) and ds.input_shape == (64,)
    text = ds.describe()
    assert text.startswith("digits: 1437 train / 360 test, input (64,), 10 classes, standardized with train mean")


# --- subsampling -----------------------------------------------------------------------------


def test_limit_is_stratified_and_deterministic():
    a = load("digits", limit_train=200, limit_test=50, seed=1)
    b = load("digits", limit_train=200, limit_test=50, seed=1)
    c = load("digits", limit_train=200, limit_test=50, seed=2)
    assert (a.n_train, a.n_test) == (200, 50)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert set(a.y_train.bincount().tolist()) <= {19, 20, 21}
    assert load("digits", limit_train=10_000).n_train == 1437  # more than there is: all of it
    with pytest.raises(UserError, match="limit_train: got 0; expected an integer >= 1"):
        load("digits", limit_train=0)


def test_stratified_indices_exact_count_and_proportions(gen):
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_indices(labels, 10, gen)
    assert idx.tolist() == sorted(set(idx.tolist())) and len(idx) == 10
    assert labels[idx].bincount().tolist() == [5, 3, 2]
    with pytest.raises(UserError, match="cannot select 101"):
        stratified_indices(labels, 101, gen)


# --- MNIST-1D --------------------------------------------------------------------------------


def test_mnist1d_generated_cached_and_never_downloaded(tmp_path, monkeypatch):
    pytest.importorskip("mnist1d")
    import mnist1d.data
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d must never be downloaded")

    monkeypatch.setattr(requests, "get", no_network)
    np.random.seed(123)  # the generator seeds numpy's and Python's global RNGs: they must be restored
    random.seed(123)
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()

    first = load("mnist1d", cache_dir=tmp_path)
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state
    assert (first.n_train, first.n_test, first.input_shape, first.num_classes) == (4000, 1000, (40,), 10)
    assert first.meta["from_cache"] is False
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    assert first.y_train.bincount().min() > 350  # ten roughly balanced classes

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached dataset must not be regenerated")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generation)
    second = load("mnist1d", cache_dir=tmp_path)
    assert second.meta["from_cache"] is True
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_same_seed_same_bits_and_global_rng_untouched():
    before = torch.get_rng_state()
    a = load("synthetic", seed=5, n_train=300, n_test=100, n_features=8, n_classes=3)
    b = load("synthetic", seed=5, n_train=300, n_test=100, n_features=8, n_classes=3)
    c = load("synthetic", seed=6, n_train=300, n_test=100, n_features=8, n_classes=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert (a.n_train, a.n_test, a.input_shape, a.num_classes) == (300, 100, (8,), 3)
    assert a.y_train.bincount().tolist() == [100, 100, 100]  # mixture classes are balanced


def test_synthetic_train_set_does_not_depend_on_test_size():
    a = load("synthetic", seed=1, n_test=100)
    b = load("synthetic", seed=1, n_test=700)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)


def _nearest_mean_accuracy(ds: Dataset) -> float:
    means = torch.stack([ds.x_train[ds.y_train == k].mean(0) for k in range(ds.num_classes)])
    predicted = torch.cdist(ds.x_test, means).argmin(1)
    return float((predicted == ds.y_test).float().mean())


def test_synthetic_mixture_separation_controls_difficulty():
    # 4 classes in 32-D: at separation 3 pairwise Bayes error is ~1.7%; at 0 there is no signal
    easy = load("synthetic", seed=0, separation=3.0, n_test=2000)
    none = load("synthetic", seed=0, separation=0.0, n_test=2000)
    assert _nearest_mean_accuracy(easy) > 0.9
    assert _nearest_mean_accuracy(none) < 0.35  # chance is 0.25; 2000 test samples


def test_synthetic_teacher_labels_follow_the_documented_rule():
    import math

    from initlab.seeding import derive_generator

    ds = load("synthetic", kind="teacher", seed=2, n_train=3000, n_classes=3, standardize="none")
    g = derive_generator(2, "synthetic", "model")
    w1 = torch.randn(64, 32, generator=g) / math.sqrt(32)
    w2 = torch.randn(3, 64, generator=g) / math.sqrt(64)
    assert torch.equal((torch.tanh(ds.x_train @ w1.T) @ w2.T).argmax(1), ds.y_train)
    assert ds.y_train.bincount().min() > 300  # every class present in quantity
    assert ds.spec["kind"] == "teacher" and ds.spec["hidden"] == 64


def test_spec_rebuilds_the_same_dataset():
    ds = load("synthetic", seed=4, n_features=6, limit_train=500)
    again = load(**ds.spec)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)


# --- names and errors ------------------------------------------------------------------------


def test_names_and_aliases():
    assert names() == ["cifar10", "digits", "fashion-mnist", "mnist", "mnist1d", "synthetic"]
    assert load("SYNTHETIC", n_train=20, n_test=10).name == "synthetic"


def test_unknown_dataset_suggests_nearest():
    with pytest.raises(UserError, match="unknown dataset 'fashion-mnst'. Did you mean 'fashion-mnist'"):
        load("fashion-mnst")


def test_unknown_or_bad_options_are_user_errors():
    with pytest.raises(UserError, match="no option 'n_trian'. Did you mean 'n_train'"):
        load("synthetic", n_trian=5)
    with pytest.raises(UserError, match="no option 'n_train'"):
        load("digits", n_train=5)
    with pytest.raises(UserError, match="synthetic n_classes: got 1; expected an integer >= 2"):
        load("synthetic", n_classes=1)
    with pytest.raises(UserError, match="synthetic kind: got 'blobs'; expected one of mixture, teacher"):
        load("synthetic", kind="blobs")


def test_dataset_validates_its_tensors():
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(UserError, match="x_train has 4 samples but y_train has 3"):
        Dataset("t", x, y[:3], x, y, 2)
    with pytest.raises(UserError, match=r"labels 0\.\.1; allowed 0\.\.0"):
        Dataset("t", x, y, x, y, 1)
    with pytest.raises(UserError, match="1-D int64"):
        Dataset("t", x, y.int(), x, y, 2)


def test_dataset_flatten_and_to_keep_values():
    ds = load("synthetic", n_train=40, n_test=10, n_features=6)
    images = Dataset("img", ds.x_train.reshape(40, 1, 2, 3), ds.y_train, ds.x_test.reshape(10, 1, 2, 3), ds.y_test, 4)
    flat = images.flatten()
    assert flat.input_shape == (6,) and images.input_shape == (1, 2, 3)
    assert torch.equal(flat.x_train, ds.x_train) and flat.y_test is ds.y_test
    moved = images.to("cpu")
    assert torch.equal(moved.x_test, images.x_test) and moved.num_classes == 4
