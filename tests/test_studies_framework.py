"""The study framework: settings, listing, and the one-seed guard."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from initlab import studies
from initlab.studies.settings import as_list, seed_list


def test_every_article_claim_has_a_registered_study():
    assert studies.names() == [
        "symmetry",
        "scale",
        "depth",
        "activation-match",
        "per-layer",
        "bias",
        "criticality",
        "normalization",
        "depth-frontier",
        "lr-transfer",
    ]
    assert all(studies.get(n).claim for n in studies.names())


def test_seed_settings_need_two_seeds_for_an_interval():
    assert seed_list(3) == (0, 1, 2) and seed_list("5-6") == (5, 6) and seed_list([4, 1]) == (4, 1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_list(1)
    with pytest.raises(ValueError, match="^seeds: a count must be > 0"):
        seed_list(0)


def test_list_settings_keep_scheme_specs_whole():
    assert as_list("he_normal(mode=fan_out, a=0),zeros") == ["he_normal(mode=fan_out, a=0)", "zeros"]
    assert as_list(3) == [3] and as_list([1, 2]) == [1, 2]


def test_study_list_prints_every_study():
    res = subprocess.run(
        [sys.executable, "-m", "initlab", "study", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr
    assert [line.split()[0] for line in res.stdout.strip().splitlines()] == studies.names()
