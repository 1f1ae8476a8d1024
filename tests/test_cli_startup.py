"""Start-up speed, piped tables, the report at 420 px, study effects in the tables' unit (issue #16)."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys

import pytest

from initlab.cli import SUMMARIES, build_parser, schemes_cmd

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PROBE = """
import sys, time
from initlab.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("TORCH-LOADED" if "torch" in sys.modules else "TORCH-ABSENT", file=sys.stderr)
"""


def cpu_seconds_of(argv: list[str]) -> tuple[float, str, str]:
    """CPU seconds (user + system) a fresh interpreter spends on ``initlab *argv``: the
    machine's load changes wall time, hardly CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120, env=ENV
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, res.stdout, res.stderr


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["schemes"], ["schemes", "--json"], ["schemes", "glorot"]])
def test_help_and_schemes_start_without_torch_in_under_half_a_second(argv):
    cpu, out, err = cpu_seconds_of(argv)
    assert "TORCH-ABSENT" in err, err
    assert out.strip()
    assert cpu < 0.5, f"initlab {' '.join(argv)} took {cpu:.2f} s of CPU"


def test_the_command_that_runs_is_fully_registered_and_the_others_are_stubs():
    full = build_parser()
    actions = next(a for a in full._actions if a.dest == "command")
    helps = {a.dest: a.help for a in actions._choices_actions}
    assert helps == SUMMARIES  # `initlab --help` shows what each command's own module says
    assert "--schemes" in actions.choices["compare"].format_help()


def test_the_schemes_snapshot_matches_the_registry():
    from initlab.cli import _schemes_catalog as snapshot

    assert schemes_cmd.source_hash() == snapshot.SOURCE_HASH, (
        "src/initlab/schemes changed: regenerate the snapshot with `python -m initlab.cli.schemes_cmd`"
    )
    assert json.loads(snapshot.ROWS) == schemes_cmd.live_rows()


def test_a_stale_snapshot_is_never_shown(monkeypatch):
    from initlab.cli import _schemes_catalog as snapshot

    monkeypatch.setattr(snapshot, "ROWS", json.dumps([{"name": "bogus"}]))
    monkeypatch.setattr(snapshot, "SOURCE_HASH", "0" * 64)
    assert schemes_cmd.catalog_rows() == schemes_cmd.live_rows()


def test_piped_schemes_table_keeps_every_cell_whole():
    res = subprocess.run(
        [sys.executable, "-m", "initlab", "schemes"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "COLUMNS": "80"},
    )
    assert res.returncode == 0, res.stderr
    for row in schemes_cmd.live_rows():
        for cell in (row["name"], row["formula"], row["reference"], ", ".join(row["aliases"])):
            assert cell in res.stdout, f"{cell!r} is cut across lines"


def test_piped_result_tables_do_not_wrap():
    from initlab.report.tables import print_rich

    long_cell = "random_normal(mean=0.0, std=0.01)_with_a_very_long_unbroken_name_of_sixty_characters"
    buffer = io.StringIO()
    print_rich("title", ["scheme", "n", "mean"], [[long_cell, "10", "91.23 ± 0.50"]], file=buffer)
    assert long_cell in buffer.getvalue() and "91.23 ± 0.50" in buffer.getvalue()


def test_html_report_is_readable_on_a_narrow_screen(tmp_path):
    from initlab.report import ReportData, write_report

    runs = [
        dict(
            scheme=s,
            seed=seed,
            status="ok",
            test_acc=0.9,
            test_loss=0.3,
            train_acc=0.9,
            train_loss=0.3,
            diverged_step=None,
            wall_time=0.1,
        )
        for s in ("he_normal", "zeros")
        for seed in range(2)
    ]
    epochs = [
        dict(
            scheme=r["scheme"],
            seed=r["seed"],
            epoch=1,
            step=10,
            train_loss=0.3,
            train_acc=0.9,
            test_loss=0.3,
            test_acc=0.9,
            wall_time=0.1,
        )
        for r in runs
    ]
    data = ReportData.from_records(
        "exp1",
        {"schemes": ["he_normal", "zeros"], "reference": "he_normal", "target": 0.5, "dataset": "digits", "epochs": 1},
        runs,
        epochs,
        created="2026-12-01",
    )
    write_report(data, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    assert page.count("<table>") >= 2
    assert page.count("<table>") == page.count("<div class='scroll'><table>")
    assert ".scroll{overflow-x:auto" in page and "td{white-space:nowrap}" in page


def test_study_effects_are_printed_in_percentage_points():
    from initlab.studies.base import StudyResult

    acc = StudyResult(
        study="s",
        claim="c",
        verdict="supported",
        effect=0.0877,
        ci=(0.061, 0.114),
        effect_label="test accuracy He − Xavier",
        summary="...",
    )
    assert acc.effect_text() == "test accuracy He − Xavier = +8.8 pp (95% CI [+6.1, +11.4])"
    assert "+8.8 pp" in acc.markdown() and "0.0877" not in acc.markdown()
    loss = StudyResult(
        study="s",
        claim="c",
        verdict="partly",
        effect=-0.25,
        ci=(-0.4, -0.1),
        effect_label="early test loss He − 2×He",
        summary="...",
    )
    assert loss.effect_text() == "early test loss He − 2×He = -0.25 (95% CI [-0.4, -0.1])"
    spread = StudyResult(
        study="s",
        claim="c",
        verdict="partly",
        effect=0.031,
        ci=(0.01, 0.05),
        effect_label="std of scheme means",
        summary="...",
        effect_unit="pp",
    )
    assert "+3.1 pp" in spread.effect_text()


def test_a_command_module_is_imported_with_collection_paused_and_the_state_restored(monkeypatch):
    import gc
    import types

    import initlab.cli as cli

    seen = []
    stub = types.SimpleNamespace(register=lambda sub: sub.add_parser("schemes"))
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: seen.append(gc.isenabled()) or stub)
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            cli.build_parser(only="schemes")
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert seen == [False, False]


def test_only_a_process_owning_call_freezes_objects_out_of_collection(capsys):
    import gc

    from initlab.cli import main

    before = gc.get_freeze_count()
    assert main(["schemes", "--json"]) == 0
    assert gc.get_freeze_count() == before  # tests and library callers keep a normal collector
    try:
        assert main(["schemes", "--json"], owns_process=True) == 0
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
    capsys.readouterr()
