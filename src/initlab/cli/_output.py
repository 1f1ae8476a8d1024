"""Output shared by ``compare`` and ``report``: write the report files, then JSON or tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def publish(data, out: str | None, *, as_json: bool) -> dict[str, Path]:
    """Write the report to ``out`` (default ``runs/<experiment id>``); print the JSON summary
    (``as_json``, stdout holds nothing else) or the run and summary tables."""
    from initlab.report import print_terminal, write_report
    from initlab.sweep import check_writable_dir

    files = write_report(data, check_writable_dir(out or f"runs/{data.experiment_id}"))
    if as_json:
        json.dump(data.to_json(), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print_terminal(data)
    return files
