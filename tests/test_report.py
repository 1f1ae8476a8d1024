"""Report files from known records: contents that could be wrong, not just existence."""

from __future__ import annotations

import csv
import json
import re

import pytest

from initlab.report import ReportData, write_report


@pytest.fixture
def data():
    schemes = ["he_normal", "zeros"]
    runs, epochs = [], []
    for s in schemes:
        for seed in range(4):
            final = 0.1 if s == "zeros" else 0.9 + 0.01 * seed
            for ep in (1, 2, 3):
                epochs.append(
                    dict(
                        scheme=s,
                        seed=seed,
                        epoch=ep,
                        step=10 * ep,
                        train_loss=1.0 / ep,
                        train_acc=final,
                        test_loss=1.0,
                        test_acc=final * ep / 3,
                        wall_time=0.1 * ep,
                    )
                )
            runs.append(
                dict(
                    scheme=s,
                    seed=seed,
                    status="diverged" if (s, seed) == ("zeros", 3) else "ok",
                    test_acc=final,
                    test_loss=1.0,
                    train_acc=final,
                    train_loss=0.3,
                    diverged_step=5 if (s, seed) == ("zeros", 3) else None,
                    wall_time=0.3,
                )
            )
    config = {"schemes": schemes, "reference": "he_normal", "target": 0.6, "dataset": "digits", "epochs": 3}
    signal = {s: [dict(out_var=1.0, grad_var=1e-3 * (i + 1)) for i in range(3)] for s in schemes}
    return ReportData.from_records("exp1", config, runs, epochs, signal=signal, created="2026-11-29")


def test_summary_and_steps_to_target(data):
    rows = {r["scheme"]: r for r in data.summary}
    assert rows["he_normal"]["n"] == 4 and rows["he_normal"]["mean"] == pytest.approx(0.915)
    assert rows["zeros"]["diverged"] == 1 and rows["zeros"]["rank"] == 2
    # he reaches 0.6 at epoch 2 (0.9*2/3 = 0.6) -> step 20; zeros never
    assert rows["he_normal"]["steps_to_target"] == 20 and rows["zeros"]["steps_to_target"] is None


def test_json_contract(data):
    j = json.loads(json.dumps(data.to_json()))
    assert j["experiment_id"] == "exp1"
    assert {"scheme", "n", "mean", "std", "ci_low", "ci_high", "diverged"} <= set(j["summary"][0])
    assert {"scheme", "seed", "test_acc", "status"} <= set(j["runs"][0])
    assert len(j["runs"]) == 8 and all(0 <= r["test_acc"] <= 1 for r in j["runs"])


def test_report_files(data, tmp_path):
    files = write_report(data, tmp_path / "out")
    for key in ("accuracy", "curves", "convergence", "signal"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = files["html"].read_text()
    # Self-contained: every image inline, nothing fetched.
    assert html.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=['\"](https?:|//|[^d'\"][^a])", html)
    md = files["md"].read_text()
    assert "| 1 | he_normal | 4 | 91.50 ± 1.29 |" in md
    assert "97.55" in md  # the article's claimed mean for He, labelled as a claim
    with open(files["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and rows[-1]["status"] == "diverged" and rows[-1]["diverged_step"] == "5"
