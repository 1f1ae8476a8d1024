"""The studies page: every verdict with its evidence, written from real runs.

Each study run writes its result to ``OUT/<study>/result.json`` (with the command that made it,
its wall time and when it finished); ``index.md`` is assembled from every ``result.json`` under
``OUT``, in the registry's order. So one study can be rerun on its own and the page keeps the
others' sections, each naming the command it came from.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from initlab.studies.base import StudyResult

RESULT_FILE = "result.json"


def save_result(result: StudyResult, out: Path, *, command: str, wall_s: float) -> Path:
    """Write ``out/<study>/result.json``: the result and how it was made."""
    record: dict[str, Any] = result.to_record(base=out)
    record["made_by"] = {
        "command": command,
        "wall_s": round(wall_s, 1),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path = out / result.study / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    return path


def load_results(out: Path, order: Sequence[str]) -> list[tuple[StudyResult, dict[str, Any]]]:
    """Every saved result under ``out`` (studies in ``order``), with its ``made_by`` data."""
    found = []
    for name in order:
        path = out / name / RESULT_FILE
        if path.is_file():
            record = json.loads(path.read_text())
            found.append((StudyResult.from_record(record, base=out), record.get("made_by", {})))
    return found


def _made_by_line(made_by: dict[str, Any]) -> str:
    if not made_by:
        return ""
    return (
        f"*Made by `{made_by.get('command', '?')}` ({made_by.get('wall_s', '?')} s wall clock, "
        f"finished {made_by.get('finished', '?')}).*"
    )


def write_page(
    results: Sequence[StudyResult], out: Path, *, command: str | None = None, order: Sequence[str] | None = None
) -> Path:
    """``out/index.md``: a verdict table, then one section per study (figures beside it).

    ``results`` are this run's (saved to ``result.json`` first); the page also takes every other
    study's saved result under ``out`` when ``order`` (the registry's names) is given.
    """
    from initlab.report.tables import markdown

    out.mkdir(parents=True, exist_ok=True)
    command = command or "initlab " + " ".join(sys.argv[1:])
    names = list(order) if order is not None else [r.study for r in results]
    fresh = {r.study: r for r in results}
    saved = {r.study: (r, made) for r, made in load_results(out, names)}
    sections = []
    for name in names:
        if name in saved:
            result, made = saved[name]
            sections.append((fresh.get(name, result), made))
        elif name in fresh:
            sections.append((fresh[name], {"command": command}))
    rows = [
        [
            f"[`{r.study}`](#{r.study})",
            r.verdict,
            r.effect_text(),
            r.claim if len(r.claim) < 140 else r.claim[:137] + "...",
        ]
        for r, _ in sections
    ]
    lines = [
        "# The article's claims, tested",
        "",
        "Assembled by `initlab study` from real runs. Each section names the command that made it and"
        " its wall-clock time; the runs are in the store that command names.",
        "",
        markdown(["study", "verdict", "effect (95% CI)", "the article's claim"], rows),
        "",
    ]
    for r, made in sections:
        lines += [f'<a id="{r.study}"></a>', "", r.markdown(figure_dir=out)]
        made_line = _made_by_line(made)
        lines += [made_line, ""] if made_line else [""]
    path = out / "index.md"
    path.write_text("\n".join(lines))
    return path
