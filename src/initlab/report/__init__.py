"""Reports for an experiment: terminal tables, Markdown, self-contained HTML, PNG plots, CSV.

Everything is computed from stored records (the experiment's config, its runs and per-epoch
metrics, the signal at init), so ``initlab report ID`` rebuilds the report from the store alone.

Rooms: ``data`` (``ReportData``: records -> summary), ``analysis`` (lr selection, budgets,
paired bootstraps), ``tables`` (rows for every output), ``wording`` (titles and notes they
share), ``terminal`` (``print_terminal``), ``files`` (``write_report``), ``plots`` (matplotlib).
"""

from __future__ import annotations

from initlab.article import claimed_mean
from initlab.report.data import RUN_COLUMNS, SUMMARY_KEYS, ReportData
from initlab.report.files import write_report
from initlab.report.terminal import print_terminal
from initlab.report.wording import EQUIVALENCE_NOTE

__all__ = [
    "ReportData",
    "print_terminal",
    "write_report",
    "claimed_mean",
    "EQUIVALENCE_NOTE",
    "RUN_COLUMNS",
    "SUMMARY_KEYS",
]
