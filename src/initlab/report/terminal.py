"""The report on a terminal: the article-style run table, the summary, budgets and lr grid."""

from __future__ import annotations

from initlab.report import tables
from initlab.report.data import ReportData
from initlab.report.wording import EQUIVALENCE_NOTE, claims, metric_title, target_text, task_notes


def print_terminal(data: ReportData, *, file=None) -> None:
    """The article-style run table, then the summary."""
    metric = data.metric
    header, rows = tables.run_table(data.runs, data.order, metric)
    tables.print_rich(
        f"{metric_title(metric)} per run — experiment {data.experiment_id}  († diverged)", header, rows, file=file
    )
    tables.print_rich(
        f"Summary over seeds (reference: {data.reference}; Δ and p from paired "
        f"{data.config.get('paired_test', 'wilcoxon')} tests, Holm-corrected; {target_text(data)})",
        tables.summary_header(metric),
        tables.summary_rows(data.summary, data.reference, metric, claims(data)),
        file=file,
    )
    extra = task_notes(data)
    if extra:
        print("\n".join(extra), file=file)
    if data.tuned:
        header, rows = tables.grid_table(data.summary)
        tables.print_rich(
            "Mean validation accuracy (%) per learning rate, final budget (* selected)", header, rows, file=file
        )
    if data.paired_examples:
        tables.print_rich(
            f"Per budget: {EQUIVALENCE_NOTE.format(margin=100 * data.margin)}",
            tables.BUDGET_HEADER,
            tables.budget_rows(data.summary, data.reference),
            file=file,
        )
