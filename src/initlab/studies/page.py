"""The studies page: every verdict with its evidence, written from real runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from initlab.studies.base import StudyResult


def write_page(results: Sequence[StudyResult], out: Path, *, command: str | None = None) -> Path:
    """``out/index.md``: a verdict table, then one section per study (figures beside it)."""
    from initlab.report.tables import markdown

    out.mkdir(parents=True, exist_ok=True)
    command = command or "initlab " + " ".join(sys.argv[1:])
    rows = [
        [
            f"[`{r.study}`](#{r.study})",
            r.verdict,
            r.effect_text(),
            r.claim if len(r.claim) < 140 else r.claim[:137] + "...",
        ]
        for r in results
    ]
    lines = [
        "# The article's claims, tested",
        "",
        f"Written by `{command}` from real runs; every number below comes from the store.",
        "",
        markdown(["study", "verdict", "effect (95% CI)", "the article's claim"], rows),
        "",
    ]
    for r in results:
        lines += [f'<a id="{r.study}"></a>', "", r.markdown(figure_dir=out), ""]
    path = out / "index.md"
    path.write_text("\n".join(lines))
    return path
