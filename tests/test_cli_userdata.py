"""``initlab compare`` end to end on the user's own data: every format, every task, broken files, resume.

Runs the real command line in-process (``initlab.cli.main``: the same parser, the same one-line
errors and exit codes as the console script) with tiny settings: 2 seeds, 1-2 epochs, 2 schemes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from initlab.cli import main
from test_data_sources import (
    blobs,
    make_cifar10,
    make_image_folder,
    make_mnist,
    write_csv,
)

TINY = ["--schemes", "he_normal,zeros", "--seeds", "2", "--epochs", "2", "--width", "16", "--batch-size", "16"]


def compare(capsys, store, *args) -> tuple[int, dict | None, str]:
    code = main(["compare", *TINY, "--store", str(store), "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def experiments(store) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("select count(*) from experiments").fetchone()[0]


def blob_csv(path, n=80):
    x, y = blobs(n, features=4)
    return write_csv(path, ["a", "b", "c", "d", "label"], [list(row) + [int(t)] for row, t in zip(x, y)])


def make_sources(tmp):
    """Every classification format, built on the fly: name -> extra command-line arguments."""
    x, y = blobs(80, features=4)
    np.savez(tmp / "d.npz", x=x, y=y)
    import torch

    torch.save(
        {
            "x_train": torch.tensor(x[:60]),
            "y_train": torch.tensor(y[:60]),
            "x_test": torch.tensor(x[60:]),
            "y_test": torch.tensor(y[60:]),
        },
        tmp / "d.pt",
    )
    blob_csv(tmp / "d.csv")
    make_image_folder(tmp / "imgs", per_class=8)
    make_cifar10(tmp / "cifar", n=8)
    make_mnist(tmp / "mnist", n=20)
    (tmp / "userdata_mod.py").write_text(
        "import numpy as np\n"
        "def blob_data():\n"
        "    y = np.arange(60) % 2\n"
        "    x = np.random.default_rng(0).normal(size=(60, 4)) + 4.0 * y[:, None]\n"
        "    return {'x': x, 'y': y}\n"
    )
    return {
        "npz": [str(tmp / "d.npz")],
        "pt": [str(tmp / "d.pt")],
        "csv": [str(tmp / "d.csv"), "--target-column", "label"],
        "images": [str(tmp / "imgs"), "--image-size", "4"],
        "cifar10": ["cifar10", "--data-dir", str(tmp / "cifar")],
        "mnist": ["mnist", "--data-dir", str(tmp / "mnist")],
        "function": ["userdata_mod:blob_data"],
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("userdata")
    return tmp, make_sources(tmp)


@pytest.mark.parametrize("kind", ["npz", "pt", "csv", "images", "cifar10", "mnist", "function"])
def test_every_format_runs_through_compare(kind, sources, capsys, monkeypatch):
    tmp, made = sources
    monkeypatch.syspath_prepend(str(tmp))
    store = tmp / f"{kind}.sqlite"
    code, out, err = compare(capsys, store, "--dataset", *made[kind])
    assert code == 0, err
    assert out["metric"] == {"name": "accuracy", "higher_is_better": True, "unit": "fraction"}
    assert {r["scheme"] for r in out["summary"]} == {"he_normal", "zeros"} and len(out["runs"]) == 4
    assert all(0 <= r["test_acc"] <= 1 for r in out["runs"])
    source = out["config"]["data_source"]
    assert len(source["sha256"]) == 64 and (kind == "function" or source["size"] > 0)
    if kind in ("npz", "csv", "function"):  # separable blobs: He learns them, zero init cannot
        by = {r["scheme"]: r["mean"] for r in out["summary"]}
        assert by["he_normal"] > 0.9 and by["he_normal"] > by["zeros"]


def test_registered_name_through_the_python_api(tmp_path):
    import initlab.data
    from initlab.sweep import compare as run_compare

    initlab.data.register("blobs-for-test", lambda: dict(zip(("x", "y"), blobs(60, features=4))), overwrite=True)
    data = run_compare(
        store=tmp_path / "s.sqlite",
        progress=False,
        dataset="blobs-for-test",
        schemes=("he_normal", "zeros"),
        seeds=(0, 1),
        epochs=2,
        width=16,
        batch_size=16,
    )
    assert data.config["data_source"]["function"] == "blobs-for-test"
    assert {r["scheme"]: r["mean"] for r in data.summary}["he_normal"] > 0.9


def test_regression_csv_reports_mse_in_original_units_and_r2(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = 1000.0 + 100.0 * (x @ np.array([1.0, -0.5, 0.25]))  # large units: MSE must come back in them
    write_csv(tmp_path / "r.csv", ["a", "b", "c", "price"], [list(r) + [t] for r, t in zip(x, y)])
    code, out, err = compare(
        capsys,
        tmp_path / "s.sqlite",
        "--dataset",
        str(tmp_path / "r.csv"),
        "--task",
        "regression",
        "--target-column",
        "price",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "8",
    )
    assert code == 0, err
    assert out["metric"]["name"] == "mse" and out["metric"]["higher_is_better"] is False
    by = {r["scheme"]: r for r in out["summary"]}
    assert by["he_normal"]["rank"] == 1.0 and by["he_normal"]["mean"] < by["zeros"]["mean"]
    assert by["zeros"]["mean"] > 0.5 * np.var(y[-24:])  # in price² units, near the test variance
    assert by["he_normal"]["r2"] > 0.8 and by["zeros"]["r2"] < 0.2


def test_lm_on_text_with_the_transformer(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    code, out, err = compare(
        capsys,
        tmp_path / "s.sqlite",
        "--dataset",
        str(tmp_path / "t.txt"),
        "--task",
        "lm",
        "--model",
        "transformer",
        "--width",
        "16",
        "--depth",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "2",
    )
    assert code == 0, err
    assert out["metric"] == {"name": "loss", "higher_is_better": False, "unit": "nats/token"}
    by = {r["scheme"]: r for r in out["summary"]}
    vocab = len(set("the quick brown fox jumps over the lazy dog. "))
    assert by["zeros"]["mean"] == pytest.approx(np.log(vocab), rel=0.05)  # zero init: a uniform guess
    assert by["he_normal"]["mean"] < 0.8 * np.log(vocab) and by["he_normal"]["rank"] == 1.0
    assert by["he_normal"]["bits"] == pytest.approx(by["he_normal"]["mean"] / np.log(2))


def bad_inputs(tmp):
    """(arguments, the message expected), each a broken input named by the issue."""
    write_csv(tmp / "strlabels.csv", ["a", "y"], [[1.0, "cat"], [2.0, "dog"], [3.0, "cat"]])
    write_csv(tmp / "strtarget.csv", ["a", "y"], [[1.0, "cat"], [2.0, "dog"], [3.0, "cat"]])
    write_csv(tmp / "nan.csv", ["a", "y"], [[1.0, 0], [float("inf"), 1], [3.0, 0], [4.0, 1]])
    np.savez(tmp / "keys.npz", inputs=np.zeros((4, 2)), labels=np.zeros(4))
    np.savez(
        tmp / "empty.npz",
        x_train=np.zeros((3, 2)),
        y_train=np.array([0, 1, 0]),
        x_test=np.zeros((0, 2)),
        y_test=np.zeros(0, dtype=int),
    )
    make_image_folder(tmp / "mixed")
    from PIL import Image

    Image.fromarray(np.zeros((6, 6), dtype=np.uint8), mode="L").save(tmp / "mixed" / "dog" / "grey.png")
    (tmp / "short.txt").write_text("too short")
    return [
        (["--dataset", str(tmp / "absent.csv"), "--target-column", "y"], "no such file or folder"),
        (["--dataset", str(tmp / "keys.npz")], "has keys ['inputs', 'labels']; expected x_train"),
        (["--dataset", str(tmp / "strlabels.csv"), "--target-column", "z"], "--target-column 'z' is not a column"),
        (
            ["--dataset", str(tmp / "strtarget.csv"), "--target-column", "y", "--task", "regression"],
            "non-numeric targets",
        ),
        (["--dataset", str(tmp / "strlabels.csv"), "--target-column", "y"], "labels that are not integers"),
        (["--dataset", str(tmp / "nan.csv"), "--target-column", "y"], "NaN or infinite"),
        (["--dataset", str(tmp / "empty.npz")], "the test split is empty"),
        (["--dataset", str(tmp / "mixed")], "images of mixed modes"),
        (
            ["--dataset", str(tmp / "short.txt"), "--task", "lm", "--model", "transformer", "--context", "8"],
            "too short for --context 8",
        ),
    ]


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(tmp_path, capsys):
    for args, message in bad_inputs(tmp_path):
        store = tmp_path / "s.sqlite"
        code, _, err = compare(capsys, store, *args)
        assert code == 2, (args, err)
        assert message in err and err.count("\n") == 1 and err.startswith("initlab compare: error: "), err
        assert experiments(store) == 0, args


def test_broken_file_through_the_console_script_has_no_traceback(tmp_path):
    np.savez(tmp_path / "keys.npz", inputs=np.zeros((4, 2)))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "initlab",
            "compare",
            *TINY,
            "--dataset",
            str(tmp_path / "keys.npz"),
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "s.sqlite").exists()


def test_resume_refuses_a_changed_data_file(tmp_path, capsys):
    path = blob_csv(tmp_path / "d.csv")
    store = tmp_path / "s.sqlite"
    code, first, err = compare(capsys, store, "--dataset", str(path), "--target-column", "label")
    assert code == 0, err
    code, again, err = compare(capsys, store, "--dataset", str(path), "--target-column", "label", "--resume")
    assert code == 0 and again["experiment_id"] == first["experiment_id"]
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:-1]) + "\n")  # one row fewer
    code, _, err = compare(capsys, store, "--dataset", str(path), "--target-column", "label", "--resume")
    assert code == 2 and "the data changed since experiment " + first["experiment_id"] in err
    code, _, err = compare(
        capsys, store, "--dataset", str(path), "--target-column", "label", "--resume", first["experiment_id"]
    )
    assert code == 2 and "data_source" in err
    assert experiments(store) == 1
