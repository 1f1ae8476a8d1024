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


def _made_up_result(name: str, effect: float, tmp_path) -> studies.StudyResult:
    figure = tmp_path / name / "fig.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(b"png")
    return studies.StudyResult(
        study=name,
        claim=f"claim of {name}",
        verdict="partly",
        effect=effect,
        ci=(effect - 0.1, float("nan")),
        effect_label="test accuracy a - b",
        summary=f"summary of {name}",
        tables=[("t", ["a", "b"], [["1", "2"]])],
        figures=[figure],
        settings={"seeds": 3},
    )


def test_a_study_rerun_alone_keeps_the_other_sections_of_the_page(tmp_path):
    from initlab.studies.page import save_result, write_page

    scale = _made_up_result("scale", 0.25, tmp_path)
    save_result(scale, tmp_path, command="initlab study scale --out X", wall_s=12.34)
    symmetry_v1 = _made_up_result("symmetry", 0.5, tmp_path)
    save_result(symmetry_v1, tmp_path, command="initlab study symmetry", wall_s=1.0)
    # symmetry rerun alone: its new result replaces the old one, scale's section stays
    symmetry_v2 = _made_up_result("symmetry", 0.75, tmp_path)
    save_result(symmetry_v2, tmp_path, command="initlab study symmetry --set seeds=4", wall_s=2.0)
    page = write_page([symmetry_v2], tmp_path, order=studies.names()).read_text()
    assert page.index("## `symmetry`") < page.index("## `scale`")  # the registry's order
    assert "+75.0 pp" in page and "+50.0 pp" not in page and "+25.0 pp" in page
    assert "`initlab study scale --out X` (12.3 s wall clock" in page
    assert "`initlab study symmetry --set seeds=4`" in page
    assert "![scale](scale/fig.png)" in page


def test_a_saved_study_result_reads_back_equal(tmp_path):
    import json
    import math

    from initlab.studies.base import StudyResult
    from initlab.studies.page import save_result

    original = _made_up_result("bias", 0.125, tmp_path)
    path = save_result(original, tmp_path, command="c", wall_s=0.0)
    back = StudyResult.from_record(json.loads(path.read_text()), base=tmp_path)
    assert (back.effect, back.ci[0], back.tables, back.settings) == (0.125, 0.125 - 0.1, original.tables, {"seeds": 3})
    assert math.isnan(back.ci[1]) and back.figures == [tmp_path / "bias" / "fig.png"]
    assert back.markdown(figure_dir=tmp_path) == original.markdown(figure_dir=tmp_path)


def test_study_page_assembles_saved_results_and_refuses_an_empty_directory(tmp_path):
    from initlab.studies.page import save_result

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "initlab", "study", "--page", "--out", str(tmp_path)]
    empty = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert empty.returncode == 2 and "no saved study result" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "index.md").exists()
    save_result(_made_up_result("bias", 0.125, tmp_path), tmp_path, command="initlab study bias", wall_s=3.0)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert "## `bias` — partly" in (tmp_path / "index.md").read_text()
